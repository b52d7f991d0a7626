{#- dbt's test filter (`where`), with one placeholder: `__changed_weeks__` stands for the rows of the
    weeks this build writes anew (changed_weeks_condition). The week-file facts' row tests use it: every
    other week is a file whose rows passed them in the build that wrote it and that is never changed
    (docs/warehouse.md, "Week files"); the warehouse checks validate every row again each week. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- if '__changed_weeks__' in where -%}
        {%- set where = where | replace('__changed_weeks__', '(' ~ changed_weeks_condition(relation.identifier) ~ ')') -%}
    {%- endif -%}
    {%- if where -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}
