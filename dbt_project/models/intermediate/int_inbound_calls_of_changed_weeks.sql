{{ config(materialized='table') }}
-- depends_on: {{ ref('int_weeks_changed') }}

-- One row per inbound call (see fct_inbound_calls) of each week whose fct_inbound_calls file this build
-- writes anew (int_weeks_changed): every call whose first leg lies in such a week, computed from all of
-- its legs. The publish writes one file per week from this table (publish/week_files.py).
-- The call belongs to the agent whose phone rang first; it is answered when any leg was answered
-- (a deputy or colleague picked it up) and missed otherwise. Wait time runs from the first signalling
-- of the chain to the connect of the answering leg.
{%- set weeks = changed_weeks('fct_inbound_calls') %}
{%- set every_week = not previous_week_files('fct_calls') %}

with
{%- if not every_week %}
    changed_weeks as (
        select call_week from {{ ref('int_weeks_changed') }}
        where fact = 'fct_inbound_calls'
    ),

    -- the calls with a leg in those weeks; the weeks also as dates: DuckDB skips the files of other weeks
    -- by their statistics
    changed_calls as (
        select distinct chain_key from {{ ref('fct_calls') }}
        where
            is_inbound
            and {{ week_of('call_date') }} in (select changed_weeks.call_week from changed_weeks)
            {%- if weeks %}
                and ({% for week in weeks %}{{ " or " if not loop.first }}call_date between
                    cast('{{ week }}' as date) and cast('{{ week }}' as date) + 6{% endfor %})
            {%- endif %}
    ),
{%- endif %}

-- every inbound leg of those calls (a call's later legs may lie in the next week): a join, which DuckDB
-- can spill, where `in (subquery)` ran out of the build's memory at 10M legs. In the first build and on a
-- full refresh every week is written anew: every inbound leg, and no hash table of every call.
legs as (
    {% if every_week %}
        select * from {{ ref('fct_calls') }}
        where is_inbound
    {% else %}
        select fct_calls.* from {{ ref('fct_calls') }} as fct_calls
        inner join changed_calls on fct_calls.chain_key = changed_calls.chain_key
        where fct_calls.is_inbound
    {% endif %}
),

-- Text enters the aggregate as its rank among the distinct values of the column (the highest rank is
-- the greatest text): DuckDB cannot spill an aggregate state holding text, but it can one holding a
-- number, so a full build stays under the build's memory limit. The rank tables are small (one row per
-- company or project) and read from the table, not from `legs` (a CTE read twice is materialized).
contact_company_ranks as (
    {{ text_ranks(ref('fct_calls'), 'contact_company', 'is_inbound') }}
),

project_id_ranks as (
    {{ text_ranks(ref('fct_calls'), 'project_id', 'is_inbound') }}
),

project_name_ranks as (
    {{ text_ranks(ref('fct_calls'), 'project_name', 'is_inbound') }}
),

-- One pass over the legs, grouped by chain: a hash aggregate, where window functions would sort every
-- leg twice. Every state has a fixed size (see above and the leg_order_key macro). The first leg (the
-- phone that rang first) is the one with the earliest start, the answering leg the first answered leg
-- to connect; their columns are joined back from the table (joining the `legs` CTE again would make
-- DuckDB materialize it whole). An answering leg without an agent gives no agent. Every order ends with
-- call_id, so ties are broken the same way on every build.
chains as (
    select
        legs.chain_key,
        min({{ leg_order_key('legs.start_time_utc', 'legs.call_id') }}) as first_leg_key,
        min({{ leg_order_key('legs.connect_time_utc', 'legs.call_id') }}) filter (where legs.is_answered)
            as answering_leg_key,
        bool_or(legs.is_answered) as is_answered,
        min(legs.connect_time_utc) filter (where legs.is_answered) as answered_connect_time_utc,
        cast(count(*) as integer) as leg_count,
        max(legs.stop_time_utc) as last_stop_time_utc,
        cast(sum(legs.talk_seconds) as integer) as talk_seconds,
        bool_or(legs.is_private) as is_private,
        max(contact_company_ranks.contact_company_rank) as contact_company_rank,
        max(project_id_ranks.project_id_rank) as project_id_rank,
        max(project_name_ranks.project_name_rank) as project_name_rank,
        max(legs.extracted_at) as extracted_at
    from legs
    left join contact_company_ranks on legs.contact_company = contact_company_ranks.contact_company
    left join project_id_ranks on legs.project_id = project_id_ranks.project_id
    left join project_name_ranks on legs.project_name = project_name_ranks.project_name
    group by legs.chain_key
),

joined as (
    select
        chains.chain_key,
        first_leg.call_id as first_call_id,
        first_leg.agent_username,
        answering_leg.agent_username as answered_by_username,
        first_leg.start_time_local,
        first_leg.start_time_utc,
        first_leg.call_date,
        first_leg.call_hour,
        first_leg.iso_weekday,
        first_leg.is_internal,
        first_leg.call_scope,
        chains.leg_count,
        chains.is_answered,
        cast(
            case
                when chains.is_answered then
                    {{ dbt.datediff('first_leg.start_time_utc', 'chains.answered_connect_time_utc', 'second') }} -- noqa: LT05
            end as integer
        ) as wait_seconds,
        cast(
            {{ dbt.datediff('first_leg.start_time_utc', 'chains.last_stop_time_utc', 'second') }} as integer -- noqa: LT05
        ) as signalled_seconds,
        chains.talk_seconds,
        first_leg.phone_number,
        first_leg.phone_match_key,
        {{ display_number('first_leg.phone_number', 'chains.is_private') }} as phone_number_display,
        contact_company_ranks.contact_company,
        project_id_ranks.project_id,
        project_name_ranks.project_name,
        chains.is_private,
        chains.extracted_at
    from chains
    inner join {{ ref('fct_calls') }} as first_leg
        on {{ call_id_of_order_key('chains.first_leg_key') }} = first_leg.call_id
    left join {{ ref('fct_calls') }} as answering_leg
        on {{ call_id_of_order_key('chains.answering_leg_key') }} = answering_leg.call_id
    left join contact_company_ranks on chains.contact_company_rank = contact_company_ranks.contact_company_rank
    left join project_id_ranks on chains.project_id_rank = project_id_ranks.project_id_rank
    left join project_name_ranks on chains.project_name_rank = project_name_ranks.project_name_rank
)

select
    chain_key,
    first_call_id,
    agent_username,
    answered_by_username,
    start_time_local,
    start_time_utc,
    call_date,
    call_hour,
    iso_weekday,
    is_internal,
    call_scope,
    leg_count,
    is_answered,
    not is_answered as is_missed,
    is_answered and answered_by_username <> agent_username as is_answered_by_colleague,
    wait_seconds,
    signalled_seconds,
    is_answered or signalled_seconds >= {{ var('short_abandon_seconds') }} as counts_for_service_level,
    coalesce(is_answered and wait_seconds <= {{ var('service_level_threshold_seconds') }}, false)
        as is_within_service_level,
    talk_seconds,
    phone_number,
    phone_match_key,
    phone_number_display,
    contact_company,
    project_id,
    project_name,
    is_private,
    extracted_at
from joined
{%- if not every_week %}
    where {{ week_of('call_date') }} in (select call_week from changed_weeks)
{%- endif %}
