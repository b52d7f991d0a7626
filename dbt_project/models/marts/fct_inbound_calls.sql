{{ config(materialized='view') }}
-- depends_on: {{ ref('int_weeks_changed') }}

-- One row per inbound call: all inbound legs of one TrackerID chain ("count the call, not the legs"),
-- in the week of its first leg. The calls of the weeks that changed since the previous build
-- (int_inbound_calls_of_changed_weeks) and the previous build's files of every other week; the publish
-- points this view at files alone (publish/week_files.py).
{%- set kept = week_files_of(previous_week_files('fct_inbound_calls'), changed_weeks('fct_inbound_calls'), false) %}

select * from {{ ref('int_inbound_calls_of_changed_weeks') }} -- noqa: AM04
{%- if kept %}
    union all by name
    select * from {{ read_week_files(kept) }}
{%- endif %}
