{{ config(materialized='view') }}
-- depends_on: {{ ref('int_weeks_changed') }}

-- One row per journal leg (masked): the legs of the weeks that changed since the previous build
-- (int_call_legs_of_changed_weeks) and the previous build's files of every other week. The publish writes
-- the changed weeks into files of their own and points this view at the files alone
-- (publish/week_files.py), so a night rewrites what changed, not the history. The other leg marts read
-- this view, not int_call_legs_enriched.
{%- set kept = week_files_of(previous_week_files('fct_calls'), changed_weeks('fct_calls'), false) %}

select * from {{ ref('int_call_legs_of_changed_weeks') }} -- noqa: AM04
{%- if kept %}
    union all by name
    select * from {{ read_week_files(kept) }}
{%- endif %}
