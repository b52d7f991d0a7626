{{ config(materialized='table') }}
-- depends_on: {{ ref('int_weeks_changed') }}
-- depends_on: {{ ref('int_call_legs_changed') }}

-- Every leg (masked) of each week whose fct_calls file this build writes anew: the new and changed legs
-- from the journal, and the previous build's other legs of those weeks as they were. The time-zone
-- conversions and number matching of int_call_legs_enriched run once per changed leg, not over the
-- history. The publish writes one file per week from this table (publish/week_files.py).
{%- set previous = previous_week_files('fct_calls') %}
{%- set weeks = changed_weeks('fct_calls') %}
{%- set reread = week_files_of(previous, weeks, true) %}

with legs as (
    select * from {{ ref('int_call_legs_enriched') }}
    where extracted_at > {{ week_files_watermark(previous) }}
),

new_rows as (
    select
        call_id,
        chain_key,
        agent_username,
        start_time_local,
        start_time_utc,
        connect_time_utc,
        stop_time_utc,
        call_date,
        call_hour,
        iso_weekday,
        case when is_inbound then 'inbound' else 'outbound' end as direction,
        is_inbound,
        is_internal,
        call_scope,
        is_answered,
        ring_seconds,
        talk_seconds,
        phone_number,
        phone_match_key,
        redirecting_number,
        {{ display_number('phone_number', 'is_private') }} as phone_number_display,
        {{ display_number('redirecting_number', 'is_private') }} as redirecting_number_display,
        contact_company,
        project_id,
        project_name,
        is_private,
        extracted_at
    from legs
),

-- the previous build's legs of the weeks written anew, but for the changed and gone ones
kept_rows as (
    {% if reread %}
        select * from {{ read_week_files(reread) }}
        where call_id not in (select call_id from {{ ref('int_call_legs_changed') }})
    {% else %}
        select * from new_rows
        where false
    {% endif %}
)

select * from new_rows
union all by name
select * from kept_rows -- noqa: AM04
