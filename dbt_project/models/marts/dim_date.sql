-- Calendar from the first to the last call day, with ISO weeks and the public holidays of the
-- policy's calendar. Derived from the data only, so a rerun builds the same table.
with bounds as (
    select
        min(call_date) as first_day,
        max(call_date) as last_day
    from {{ ref('fct_calls') }}
),

days as (
    {{ day_series('(select first_day from bounds)', '(select last_day from bounds)') }}
),

holidays as (
    select * from {{ ref('stg_procall__public_holidays') }}
)

select
    days.date_day,
    cast(extract(year from days.date_day) as integer) as year_number,
    cast(extract(quarter from days.date_day) as integer) as quarter_number,
    cast(extract(month from days.date_day) as integer) as month_number,
    cast(extract(isoyear from days.date_day) as integer) as iso_year,
    cast(extract(week from days.date_day) as integer) as iso_week,
    cast(extract(isodow from days.date_day) as integer) as iso_weekday,
    case cast(extract(isodow from days.date_day) as integer)
        when 1 then 'Montag' when 2 then 'Dienstag' when 3 then 'Mittwoch' when 4 then 'Donnerstag'
        when 5 then 'Freitag' when 6 then 'Samstag' else 'Sonntag'
    end as weekday_name_de,
    cast(extract(isodow from days.date_day) as integer) >= 6 as is_weekend,
    holidays.holiday_date is not null as is_public_holiday,
    holidays.holiday_name,
    cast(extract(isodow from days.date_day) as integer) < 6 and holidays.holiday_date is null as is_working_day
from days
left join holidays on days.date_day = holidays.holiday_date
