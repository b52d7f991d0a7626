{#- One row per day from start_date to end_date (inclusive), column date_day. Engine-specific. -#}
{% macro day_series(start_date, end_date) -%}
    {{ return(adapter.dispatch('day_series', 'callsight')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__day_series(start_date, end_date) -%}
    select cast(generate_series as date) as date_day
    from generate_series(cast({{ start_date }} as date), cast({{ end_date }} as date), interval 1 day)
{%- endmacro %}

{% macro default__day_series(start_date, end_date) -%}
    {{ exceptions.raise_compiler_error("day_series: implement for adapter " ~ adapter.type()) }}
{%- endmacro %}
