{{ config(
    materialized='incremental',
    unique_key='chain_key',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where chain_key not in
            (select chain_key from {{ ref('fct_calls') }} where is_inbound){% endif %}"
    ]
) }}

-- One row per inbound call: all inbound legs of one TrackerID chain ("count the call, not the legs").
-- The call belongs to the agent whose phone rang first; it is answered when any leg was answered
-- (a deputy or colleague picked it up) and missed otherwise. Wait time runs from the first signalling
-- of the chain to the connect of the answering leg.
with all_legs as (
    select * from {{ ref('fct_calls') }}
    where is_inbound
),

legs as (
    select * from all_legs
    {% if is_incremental() %}
        -- every leg of each chain that gained or changed a leg since the last build. From the table, not
        -- from `all_legs`: a CTE read twice is materialized by DuckDB, every column of every inbound leg.
        where chain_key in (
            select chain_key from {{ ref('fct_calls') }}
            where
                is_inbound
                and extracted_at > (
                    select coalesce(max(extracted_at), cast('1900-01-01' as timestamp)) from {{ this }}
                )
        )
    {% endif %}
),

-- One pass over the legs, grouped by chain: a hash aggregate, where window functions would sort every
-- leg twice. The first leg (the phone that rang first) is picked by
-- call_id and its columns are joined back (from the table: joining the `legs` CTE again would make
-- DuckDB materialize it whole). The answering leg is the first answered leg to connect; its agent
-- and connect time come straight from the aggregate (arg_min_null: an answering leg without an agent
-- gives no agent). Every ordering key ends with call_id, so ties are broken the same way on every build.
chains as (
    select
        chain_key,
        arg_min(call_id, row(start_time_utc, call_id)) as first_call_id,
        bool_or(is_answered) as is_answered,
        arg_min_null(
            agent_username, row(connect_time_utc is null, connect_time_utc, call_id)
        ) filter (where is_answered) as answered_by_username,
        min(connect_time_utc) filter (where is_answered) as answered_connect_time_utc,
        cast(count(*) as integer) as leg_count,
        max(stop_time_utc) as last_stop_time_utc,
        cast(sum(talk_seconds) as integer) as talk_seconds,
        bool_or(is_private) as is_private,
        max(contact_company) as contact_company,
        max(project_id) as project_id,
        max(project_name) as project_name,
        max(extracted_at) as extracted_at
    from legs
    group by chain_key
),

joined as (
    select
        chains.chain_key,
        chains.first_call_id,
        first_leg.agent_username,
        chains.answered_by_username,
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
        chains.contact_company,
        chains.project_id,
        chains.project_name,
        chains.is_private,
        chains.extracted_at
    from chains
    inner join {{ ref('fct_calls') }} as first_leg on chains.first_call_id = first_leg.call_id
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
