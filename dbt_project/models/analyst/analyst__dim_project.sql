{{ config(alias='dim_project') }}
-- marts.dim_project for analysts.
select
    project_id,
    project_name,
    first_call_date,
    last_call_date,
    leg_count
from {{ portable_ref('dim_project') }}
