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
        -- every leg of each chain that gained or changed a leg since the last build
        where chain_key in (
            select chain_key from all_legs
            where extracted_at > (select coalesce(max(extracted_at), cast('1900-01-01' as timestamp)) from {{ this }})
        )
    {% endif %}
),

first_leg as (
    select *
    from legs
    qualify row_number() over (partition by chain_key order by start_time_utc, call_id) = 1
),

answering_leg as (
    select *
    from legs
    where is_answered
    qualify row_number() over (partition by chain_key order by connect_time_utc, call_id) = 1
),

chain as (
    select
        chain_key,
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
        first_leg.chain_key,
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
        chain.leg_count,
        answering_leg.call_id is not null as is_answered,
        cast(
            case
                when answering_leg.call_id is not null then
                    {{ dbt.datediff('first_leg.start_time_utc', 'answering_leg.connect_time_utc', 'second') }} -- noqa: LT05
            end as integer
        ) as wait_seconds,
        cast(
            {{ dbt.datediff('first_leg.start_time_utc', 'chain.last_stop_time_utc', 'second') }} as integer -- noqa: LT05
        ) as signalled_seconds,
        chain.talk_seconds,
        first_leg.phone_number,
        first_leg.phone_match_key,
        chain.contact_company,
        chain.project_id,
        chain.project_name,
        chain.is_private,
        chain.extracted_at
    from first_leg
    inner join chain on first_leg.chain_key = chain.chain_key
    left join answering_leg on first_leg.chain_key = answering_leg.chain_key
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
    contact_company,
    project_id,
    project_name,
    is_private,
    extracted_at
from joined
