{#- Digits of a phone number, for matching callbacks; null when the number is missing or masked (XXX). -#}
{% macro phone_match_key(column) -%}
    case
        when {{ column }} is null or {{ column }} like '%X%' then null
        else nullif(regexp_replace({{ column }}, '[^0-9]', '', 'g'), '')
    end
{%- endmacro %}
