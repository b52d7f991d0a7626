-- Who looked at what, for the works council and the data-protection officer: every dashboard opened,
-- chart or dashboard exported and SQL Lab query in Superset, to the minute, with the viewer's groups
-- from the org directory (one row per event and group; viewers in no group have one row, group empty).
-- Copied from Superset's log before the build (callsight.bi.access_log); kept for the policy's
-- access_log.retention_days. Never query text, filter values or data.
with events as (
    select * from {{ ref('stg_callsight__access_log') }}
),

memberships as (
    select * from {{ ref('stg_procall__directory_memberships') }}
),

staff as (
    -- admin before analyst for someone listed as both
    select
        lower(username) as username_key,
        min(staff_role) as staff_role
    from {{ ref('stg_procall__directory_staff') }}
    group by 1
)

select
    e.access_id,
    e.accessed_at_utc,
    {{ utc_to_local('e.accessed_at_utc', var('timezone')) }} as accessed_at_local,
    cast({{ dbt.date_trunc('week', utc_to_local('e.accessed_at_utc', var('timezone'))) }} as date) as accessed_week,
    e.viewer_username,
    m.group_name,
    coalesce(s.staff_role, m.membership_role, 'user') as viewer_role,
    e.access_kind,
    e.export_format,
    e.dashboard_title,
    e.dashboard_slug,
    e.chart_name
from events as e
left join memberships as m on lower(m.username) = lower(e.viewer_username)
left join staff as s on s.username_key = lower(e.viewer_username)
