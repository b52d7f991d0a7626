{#- A leg's place in an order "by instant, then call_id" as one 128-bit integer: the microseconds since
    1970 in the upper half, the call_id (shifted to unsigned) in the lower. min() over it picks the same
    leg as arg_min(call_id, row(instant, call_id)), but its aggregate state has a fixed size, which DuckDB
    can spill to disk under its memory limit (a row() key or a text value lives outside its buffer
    manager). A missing instant sorts last. -#}
{% macro leg_order_key(instant, call_id) -%}
    (
        cast(coalesce(epoch_us({{ instant }}), 9223372036854775807) as hugeint) * 18446744073709551616
        + (cast({{ call_id }} as hugeint) + 9223372036854775808)
    )
{%- endmacro %}

{#- The call_id inside a leg_order_key. -#}
{% macro call_id_of_order_key(key) -%}
    cast(({{ key }} & cast(18446744073709551615 as hugeint)) - 9223372036854775808 as bigint)
{%- endmacro %}
