{{ config(alias='dim_customer') }}
-- marts.dim_customer for analysts.
select
    company_name,
    first_call_date,
    last_call_date,
    leg_count
from {{ portable_ref('dim_customer') }}
