-- UCServer projects chosen on calls; the most recent name wins when a project was renamed (the name
-- on the latest leg, ties broken by the higher call_id). One pass over the legs: a hash aggregate,
-- where a window would sort every project leg. start_time_utc and call_id
-- are never NULL (fct_calls' tests run before this model); a NULL would rank first in the row().
select
    project_id,
    arg_max_null(project_name, row(start_time_utc, call_id)) as project_name,
    min(call_date) as first_call_date,
    max(call_date) as last_call_date,
    count(*) as leg_count
from {{ ref('fct_calls') }}
where project_id is not null
group by project_id
