-- Companies the site phoned with (ContactCompany). Private calls carry no company under truncate/drop.
select
    contact_company as company_name,
    min(call_date) as first_call_date,
    max(call_date) as last_call_date,
    count(*) as leg_count
from {{ ref('fct_calls') }}
where contact_company is not null
group by contact_company
