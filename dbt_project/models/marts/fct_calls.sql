{{ config(
    materialized='table',
    contract={'enforced': true}
) }}

with calls as (
    select * from {{ ref('stg_procall__calls') }}
),

agents as (
    select * from {{ ref('stg_procall__directory_users') }}
),

final as (
    select
        calls.call_id,
        calls.tracker_id,
        calls.agent_username,
        coalesce(agents.display_name, calls.agent_username) as agent_name,
        calls.start_time_local,
        {{ local_to_utc('calls.start_time_local', var('timezone')) }} as start_time_utc,
        cast(calls.start_time_local as date) as call_date,
        cast(extract(hour from calls.start_time_local) as integer) as call_hour,
        cast(extract(isodow from calls.start_time_local) as integer) as iso_weekday,
        case when calls.is_outbound then 'outbound' else 'inbound' end as direction,
        not calls.is_outbound as is_inbound,
        calls.is_internal,
        case when calls.is_internal then 'intern' else 'extern' end as call_scope,
        coalesce(calls.duration_connected_seconds, 0) > 0 as is_answered,
        cast(greatest(0, {{ dbt.datediff('calls.start_time_local',
            'coalesce(calls.connect_time_local, calls.stop_time_local, calls.start_time_local)',
            'second') }}) as integer) as ring_seconds,
        cast(coalesce(calls.duration_connected_seconds, 0) as integer) as talk_seconds,
        calls.is_outbound = false
        and not (
            coalesce(calls.duration_connected_seconds, 0) = 0
            and {{ dbt.datediff('calls.start_time_local',
                'coalesce(calls.stop_time_local, calls.start_time_local)', 'second') }}
            < {{ var('short_abandon_seconds') }}
        ) as counts_for_service_level,
        calls.is_outbound = false
        and coalesce(calls.duration_connected_seconds, 0) > 0
        and {{ dbt.datediff('calls.start_time_local',
            'coalesce(calls.connect_time_local, calls.start_time_local)', 'second') }}
        <= {{ var('service_level_threshold_seconds') }} as is_within_service_level,
        calls.phone_number,
        calls.redirecting_number,
        calls.contact_company,
        calls.project_id,
        calls.project_name,
        calls.is_private
    from calls
    left join agents on calls.agent_username = agents.username
)

select * from final
