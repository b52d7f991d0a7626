{#-
  The analysts' key of a number: SHA-256 over salt|digits (phone_match_key), 16 hex digits (64 bits),
  equal to callsight.number_keys.number_key. Engine-specific: keep such syntax in named macros,
  so that another engine needs only these rewritten.
-#}
{% macro keyed_number_hash(salt, digits) -%}
    {{ return(adapter.dispatch('keyed_number_hash', 'callsight')(salt, digits)) }}
{%- endmacro %}

{% macro duckdb__keyed_number_hash(salt, digits) -%}
    left(sha256({{ salt }} || '|' || {{ digits }}), 16)
{%- endmacro %}

{% macro default__keyed_number_hash(salt, digits) -%}
    {{ exceptions.raise_compiler_error("keyed_number_hash: implement for adapter " ~ adapter.type()) }}
{%- endmacro %}
