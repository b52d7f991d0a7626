{#- A top-level text field of a JSON object stored as text; null when absent. Engine-specific. -#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'callsight')(column, key)) }}
{%- endmacro %}

{% macro duckdb__json_text(column, key) -%}
    json_extract_string({{ column }}, '$.{{ key }}')
{%- endmacro %}

{% macro default__json_text(column, key) -%}
    {{ exceptions.raise_compiler_error("json_text: implement for adapter " ~ adapter.type()) }}
{%- endmacro %}
