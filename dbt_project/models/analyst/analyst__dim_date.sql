{{ config(alias='dim_date') }}
-- marts.dim_date for analysts.
select
    date_day,
    year_number,
    quarter_number,
    month_number,
    iso_year,
    iso_week,
    iso_weekday,
    weekday_name_de,
    is_weekend,
    is_public_holiday,
    holiday_name,
    is_working_day
from {{ portable_ref('dim_date') }}
