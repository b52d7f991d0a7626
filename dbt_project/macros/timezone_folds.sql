{#-
  The repeated local intervals of time zone `tz` (clocks going back): one row per local day that such
  an interval touches, with fold_date, fold_start_local, fold_end_local (naive local, [start, end)) and
  the UTC offsets in seconds before (first pass) and after (second pass). Every CTE here is read once,
  and a model should join it as a subquery per use, not as one CTE read several times: DuckDB
  materializes such a CTE, and the query around it then computes every column of the model even
  where a reader needs one (guarded by tests/test_dbt_unit.py; figures: docs/performance.md). Offsets
  are sampled daily at UTC midnight, and every quarter of an hour on the days where they change; the
  same definition as orchestration/callsight/journal/timezones.py, which the extract uses.
  Engine-specific.
-#}
{% macro timezone_folds(tz, first_day='1970-01-01', last_day='2100-12-31') -%}
    {{ return(adapter.dispatch('timezone_folds', 'callsight')(tz, first_day, last_day)) }}
{%- endmacro %}

{% macro duckdb__timezone_folds(tz, first_day, last_day) -%}
    with days as (
        select
            generate_series as day_utc,
            datediff('second', generate_series, {{ utc_to_local('generate_series', tz) }}) as offset_seconds
        from generate_series(cast('{{ first_day }}' as timestamp), cast('{{ last_day }}' as timestamp), interval 1 day)
    ),

    changing_days as (
        select day_utc
        from (select day_utc, offset_seconds, lead(offset_seconds) over (order by day_utc) as next_offset from days)
        where next_offset <> offset_seconds
    ),

    quarters as (
        select
            changing_days.day_utc,
            changing_days.day_utc + to_minutes(15 * steps.i) as at_utc
        from changing_days cross join range(0, 97) as steps (i)
    ),

    changes as (
        select
            at_utc,
            lag(offset_seconds) over (partition by day_utc order by at_utc) as offset_before_seconds,
            offset_seconds as offset_after_seconds
        from (
            select
                day_utc,
                at_utc,
                datediff('second', at_utc, {{ utc_to_local('at_utc', tz) }}) as offset_seconds
            from quarters
        )
    ),

    repeated as (
        select
            at_utc + to_seconds(offset_after_seconds) as fold_start_local,
            at_utc + to_seconds(offset_before_seconds) as fold_end_local,
            offset_before_seconds,
            offset_after_seconds
        from changes
        where offset_after_seconds < offset_before_seconds
    )

    select distinct
        unnest([cast(fold_start_local as date), cast(fold_end_local - interval 1 microsecond as date)]) as fold_date,
        fold_start_local,
        fold_end_local,
        offset_before_seconds,
        offset_after_seconds
    from repeated
{%- endmacro %}

{% macro default__timezone_folds(tz, first_day, last_day) -%}
    {{ exceptions.raise_compiler_error("timezone_folds: implement for adapter " ~ adapter.type()) }}
{%- endmacro %}

{#- The UTC instant of local time `column` read with UTC offset `offset_seconds` (a fold's pass), or
    `plain_utc` where the offset is NULL (the time is not in a repeated interval). -#}
{% macro utc_in_pass(column, offset_seconds, plain_utc) -%}
    coalesce({{ dbt.dateadd('second', '-' ~ offset_seconds, column) }}, {{ plain_utc }})
{%- endmacro %}
