{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_callback_weeks() }}"
) }}
-- depends_on: {{ ref('int_weeks_changed') }}

-- One row per missed external inbound call: was the caller called back (or did they get through)
-- within the policy's callback window? A missed call counts as returned when, within window_hours of
-- its first signalling, an outbound call to the same number or an answered inbound call from it
-- happened. Calls without a usable number (withheld, or masked as private) cannot be matched.
-- A night computes the missed calls of the weeks whose calls or legs changed (callback_weeks) and keeps
-- the rest; the first build and a full refresh compute every week.
{%- set weeks = callback_weeks() %}
{%- set window_days = (var('callback_window_hours') / 24) | round(0, 'ceil') | int + 1 %}

with missed as (
    select * from {{ ref('fct_inbound_calls') }}
    where is_missed and not is_internal and {{ days_of_weeks('call_date', weeks, 0) }}
),

-- with the days after each week that its calls' windows reach into
legs as (
    select * from {{ ref('fct_calls') }}
    where phone_match_key is not null and not is_internal and {{ days_of_weeks('call_date', weeks, window_days) }}
),

-- Time buckets as long as the window: a leg within the window of a missed call starts in the missed
-- call's bucket or the next one. Each missed call is looked for in both, so the join matches a number's
-- legs of two windows instead of every leg of that number in the history.
missed_buckets as (
    select
        missed.*,
        buckets.bucket
    from missed,
        unnest([
            time_bucket(interval ({{ var('callback_window_hours') }}) hour, missed.start_time_utc),
            time_bucket(interval ({{ var('callback_window_hours') }}) hour, missed.start_time_utc)
            + interval ({{ var('callback_window_hours') }}) hour
        ]) as buckets (bucket)
),

candidates as (
    select
        missed.chain_key,
        legs.call_id as callback_call_id,
        legs.agent_username as callback_by_username,
        case when legs.is_inbound then 'inbound_answered' else 'outbound' end as callback_kind,
        case when legs.is_inbound then legs.connect_time_utc else legs.start_time_utc end as callback_time_utc
    from missed_buckets as missed
    inner join legs
        on
            missed.phone_match_key = legs.phone_match_key
            and missed.bucket = time_bucket(interval ({{ var('callback_window_hours') }}) hour, legs.start_time_utc)
            and missed.chain_key <> legs.chain_key
            and (not legs.is_inbound or legs.is_answered)
            and missed.start_time_utc < legs.start_time_utc
            and legs.start_time_utc <= {{ dbt.dateadd('hour', var('callback_window_hours'), 'missed.start_time_utc') }}
),

-- The first callback; of two at the same instant (two agents dialling the number in the same second)
-- the one whose leg has the lower call_id, so that every build credits the same agent.
first_callback as (
    select *
    from candidates
    qualify row_number() over (
        partition by chain_key order by callback_time_utc, callback_kind, callback_call_id
    ) = 1
)

select
    missed.chain_key,
    missed.agent_username,
    missed.call_date,
    missed.start_time_local as missed_at_local,
    missed.start_time_utc as missed_at_utc,
    missed.is_private,
    missed.contact_company,
    missed.project_id,
    missed.phone_match_key is not null as is_callback_possible,
    first_callback.chain_key is not null as is_called_back,
    first_callback.callback_kind,
    first_callback.callback_by_username,
    first_callback.callback_time_utc,
    cast(
        {{ dbt.datediff('missed.start_time_utc', 'first_callback.callback_time_utc', 'second') }} as integer -- noqa: LT05
    ) as seconds_to_callback
from missed
left join first_callback on missed.chain_key = first_callback.chain_key
