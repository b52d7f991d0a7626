{#- The distinct non-empty values of `column` in `relation` (where `condition`), each with its rank in
    DuckDB's text order as `<column>_rank`: max() over the rank picks the same value as max() over the
    text, with an aggregate state of fixed size that DuckDB can spill (fct_inbound_calls). -#}
{% macro text_ranks(relation, column, condition='true') -%}
    select
        {{ column }},
        row_number() over (order by {{ column }}) as {{ column }}_rank
    from (
        select distinct {{ column }} from {{ relation }}
        where {{ condition }}
    ) as distinct_values
    where {{ column }} is not null
{%- endmacro %}
