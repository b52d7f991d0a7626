{#- A phone number as the dashboards show it: the last three digits as XXX; nothing for a private call
    (whatever the policy kept of its number) or a missing number. Stored in the marts, so that a call
    list need not compute it for every leg of its period before keeping the newest rows. -#}
{% macro display_number(column, is_private) -%}
    case
        when {{ is_private }} or {{ column }} is null then null
        when length({{ column }}) <= 3 then 'XXX'
        else left({{ column }}, length({{ column }}) - 3) || 'XXX'
    end
{%- endmacro %}
