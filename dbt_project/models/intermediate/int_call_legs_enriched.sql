-- One row per journal leg with the time facts every KPI needs. Durations are measured on UTC
-- instants, so a call across a DST switch is not an hour too long or short; days, hours and weekdays
-- are cut on the local wall clock of the site.
with legs as (
    select * from {{ ref('stg_procall__calls') }}
),

utc as (
    select
        *,
        {{ local_to_utc('start_time_local', var('timezone')) }} as start_time_utc,
        {{ local_to_utc('connect_time_local', var('timezone')) }} as connect_time_utc,
        {{ local_to_utc('stop_time_local', var('timezone')) }} as stop_time_utc
    from legs
)

select
    call_id,
    coalesce(tracker_id, 'leg:' || cast(call_id as varchar)) as chain_key,
    agent_username,
    start_time_local,
    start_time_utc,
    connect_time_utc,
    coalesce(stop_time_utc, start_time_utc) as stop_time_utc,
    cast(start_time_local as date) as call_date,
    cast(extract(hour from start_time_local) as integer) as call_hour,
    cast(extract(isodow from start_time_local) as integer) as iso_weekday,
    not is_outbound as is_inbound,
    is_internal,
    case when is_internal then 'intern' else 'extern' end as call_scope,
    coalesce(duration_connected_seconds, 0) > 0 as is_answered,
    cast(
        greatest(0, {{ dbt.datediff('start_time_utc', 'coalesce(connect_time_utc, stop_time_utc, start_time_utc)',
            'second') }}) as integer
    ) as ring_seconds,
    cast(coalesce(duration_connected_seconds, 0) as integer) as talk_seconds,
    phone_number,
    {{ phone_match_key('phone_number') }} as phone_match_key,
    redirecting_number,
    contact_company,
    project_id,
    project_name,
    is_private,
    extracted_at
from utc
