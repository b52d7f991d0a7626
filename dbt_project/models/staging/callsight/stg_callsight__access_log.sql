with source as (
    select * from {{ source('callsight', 'access_log') }}
),

renamed as (
    select
        cast(log_id as bigint) as access_id,
        cast(accessed_at as timestamp) as accessed_at_utc,
        cast(username as varchar) as viewer_username,
        cast(access_kind as varchar) as access_kind,
        cast(export_format as varchar) as export_format,
        cast(dashboard_title as varchar) as dashboard_title,
        cast(dashboard_slug as varchar) as dashboard_slug,
        cast(chart_name as varchar) as chart_name
    from source
)

select * from renamed
