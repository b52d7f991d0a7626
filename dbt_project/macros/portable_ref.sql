{#- A reference without the database name, for views that must keep working after publish renames the
    build file (DuckDB names the database after the file). `ref()` still records the dependency. -#}
{% macro portable_ref(model_name) -%}
    {{ ref(model_name).include(database=False) }}
{%- endmacro %}

