-- depends_on: {{ ref('int_call_legs_changed') }}
-- "Count the call, not the legs": every inbound leg's chain is exactly one row of fct_inbound_calls,
-- and the legs add up to the calls' leg counts. Checked for every call that may differ from the
-- previous build's, which passed it: the calls of the legs that changed at the source (their call now
-- and before) and those with a row, now or in the previous build, in a week this build writes anew
-- (changed_weeks_condition, rewritten_week_files), whatever weeks the build chose and whatever it wrote
-- there; every other row is a file that passed. Every call on a full refresh.
{%- set leg_weeks = changed_weeks_condition('fct_calls') %}
{%- set call_weeks = changed_weeks_condition('fct_inbound_calls') %}
{%- set every_call = leg_weeks == 'true' or call_weeks == 'true' %}
{%- set legs_before = rewritten_week_files('fct_calls') %}
{%- set calls_before = rewritten_week_files('fct_inbound_calls') %}

with
{%- if not every_call %}
    changed_calls as (
        select chain_key_now as chain_key from {{ ref('int_call_legs_changed') }}
        where is_inbound_now
        union
        select chain_key_before as chain_key from {{ ref('int_call_legs_changed') }}
        where is_inbound_before
        union
        select chain_key from {{ ref('fct_calls') }}
        where is_inbound and ({{ leg_weeks }})
        union
        select chain_key from {{ ref('fct_inbound_calls') }}
        where {{ call_weeks }}
        {%- if legs_before %}
            union
            select chain_key from {{ read_week_files(legs_before) }}
            where is_inbound
        {%- endif %}
        {%- if calls_before %}
            union
            select chain_key from {{ read_week_files(calls_before) }}
        {%- endif %}
    ),
{%- endif %}

legs as (
    select
        chain_key,
        count(*) as leg_count
    from {{ ref('fct_calls') }}
    where
        is_inbound
        {%- if not every_call %} and chain_key in (select changed_calls.chain_key from changed_calls){% endif %}
    group by chain_key
),

calls as (
    select
        chain_key,
        leg_count
    from {{ ref('fct_inbound_calls') }}
    {%- if not every_call %}
        where chain_key in (select changed_calls.chain_key from changed_calls)
    {%- endif %}
)

select
    coalesce(legs.chain_key, calls.chain_key) as chain_key,
    legs.leg_count as legs_in_fct_calls,
    calls.leg_count as legs_in_fct_inbound_calls
from legs
full outer join calls on legs.chain_key = calls.chain_key
where legs.leg_count is distinct from calls.leg_count
