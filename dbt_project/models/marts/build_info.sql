-- Which policy and which model code built this warehouse. The nightly job compares the fingerprint
-- with its own and rebuilds the incremental models from scratch when either changed.
select
    '{{ var("build_fingerprint") }}' as build_fingerprint,
    '{{ invocation_id }}' as dbt_invocation_id,
    '{{ var("timezone") }}' as site_timezone,
    cast({{ var("service_level_threshold_seconds") }} as integer) as service_level_threshold_seconds,
    cast({{ var("short_abandon_seconds") }} as integer) as short_abandon_seconds,
    cast({{ var("callback_window_hours") }} as integer) as callback_window_hours,
    cast({{ var("retention_days") }} as integer) as retention_days,
    current_timestamp as built_at
