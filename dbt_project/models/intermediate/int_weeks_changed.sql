{{ config(materialized='table') }}

-- The weeks whose files this build writes anew, per fact: for fct_calls every week a changed leg is in,
-- now or before; for fct_inbound_calls every week an inbound leg of a changed call is in, now or before
-- (a call belongs to the week of its first leg, which may lie in the week before a changed leg's). On a
-- full refresh also every week the previous build lists, so that no file of other rules stays.
{%- set previous = previous_week_files('fct_calls') %}
{%- set replaced = [] %}
{%- if not previous %}
    {%- for fact in ['fct_calls', 'fct_inbound_calls'] %}
        {%- for file in listed_week_files(fact) %}{% do replaced.append((fact, file[0] | string)) %}{% endfor %}
    {%- endfor %}
{%- endif %}

with changed as (
    select * from {{ ref('int_call_legs_changed') }}
),

{%- if previous %}

    -- the calls with a changed inbound leg: the weeks of all their inbound legs before
    changed_calls as (
        select chain_key_now as chain_key from changed
        where is_inbound_now
        union
        select chain_key_before as chain_key from changed
        where is_inbound_before
    ),
{%- endif %}

leg_weeks as (
    select call_week_now as call_week from changed
    where call_week_now is not null
    union
    select call_week_before as call_week from changed
    where call_week_before is not null
),

call_weeks as (
    select call_week_now as call_week from changed
    where is_inbound_now
    union
    select call_week_before as call_week from changed
    where is_inbound_before
    {%- if previous %}
        union
        select {{ week_of('previous_legs.call_date') }} as call_week
        from {{ read_week_files(previous) }} as previous_legs
        where
            previous_legs.is_inbound
            and previous_legs.chain_key in (select changed_calls.chain_key from changed_calls)
    {%- endif %}
),

listed as (
    select
        listing.fact,
        cast(listing.call_week as date) as call_week
    from (
        values ('none', '1900-01-01')
        {%- for fact, week in replaced %}, ('{{ fact }}', '{{ week }}'){% endfor %}
    ) as listing (fact, call_week)
    where listing.fact != 'none'
)

select
    'fct_calls' as fact,
    call_week
from leg_weeks
union
select
    'fct_inbound_calls' as fact,
    call_week
from call_weeks
union
select
    fact,
    call_week
from listed
