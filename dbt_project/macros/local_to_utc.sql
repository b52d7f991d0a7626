{#-
  Convert a naive local wall-clock timestamp of the site time zone to naive UTC.
  Engine-specific: keep such syntax in named macros, so that another engine needs only these rewritten.
-#}
{% macro local_to_utc(column, tz) -%}
    {{ return(adapter.dispatch('local_to_utc', 'callsight')(column, tz)) }}
{%- endmacro %}

{% macro default__local_to_utc(column, tz) -%}
    cast(({{ column }} at time zone '{{ tz }}') at time zone 'UTC' as timestamp)
{%- endmacro %}

{% macro duckdb__local_to_utc(column, tz) -%}
    cast(timezone('UTC', timezone('{{ tz }}', {{ column }})) as timestamp)
{%- endmacro %}

{#- The reverse: a naive UTC timestamp to the naive local wall-clock time of the site time zone. -#}
{% macro utc_to_local(column, tz) -%}
    {{ return(adapter.dispatch('utc_to_local', 'callsight')(column, tz)) }}
{%- endmacro %}

{% macro default__utc_to_local(column, tz) -%}
    cast(({{ column }} at time zone 'UTC') at time zone '{{ tz }}' as timestamp)
{%- endmacro %}

{% macro duckdb__utc_to_local(column, tz) -%}
    cast(timezone('{{ tz }}', timezone('UTC', {{ column }})) as timestamp)
{%- endmacro %}
