select
    cast(holiday_date as date) as holiday_date,
    cast(holiday_name as varchar) as holiday_name
from {{ source('procall', 'public_holidays') }}
