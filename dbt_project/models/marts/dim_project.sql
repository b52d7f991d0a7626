-- UCServer projects chosen on calls; the most recent name wins when a project was renamed.
with project_legs as (
    select * from {{ ref('fct_calls') }}
    where project_id is not null
),

latest_name as (
    select
        project_id,
        project_name
    from project_legs
    qualify row_number() over (partition by project_id order by start_time_utc desc, call_id desc) = 1
)

select
    project_legs.project_id,
    latest_name.project_name,
    min(project_legs.call_date) as first_call_date,
    max(project_legs.call_date) as last_call_date,
    count(*) as leg_count
from project_legs
inner join latest_name on project_legs.project_id = latest_name.project_id
group by project_legs.project_id, latest_name.project_name
