{#- fct_callbacks by week (docs/warehouse.md, "Week files"): a night recomputes the missed calls of the
    weeks whose inbound calls changed, and of the weeks whose calls' windows reach a week with a changed
    leg (a callback may be made up to callback_window_hours after the missed call). -#}

{#- The weeks ('YYYY-MM-DD' Mondays) whose missed calls this build computes anew; none (every week) in the
    first build, on a full refresh, and while the previous build lists no week files. -#}
{% macro callback_weeks() -%}
    {#- a unit test that gives no `this` has no previous table -#}
    {%- if this is none or not is_incremental() or not previous_week_files('fct_calls') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set back = (var('callback_window_hours') / 168) | round(0, 'ceil') | int -%}
    {%- set weeks = changed_weeks('fct_inbound_calls') | list -%}
    {%- for week in changed_weeks('fct_calls') -%}
        {%- for n in range(back + 1) -%}
            {%- do weeks.append(
                (modules.datetime.date.fromisoformat(week) - modules.datetime.timedelta(days=7 * n)).isoformat()
            ) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(weeks | unique | sort | list) }}
{%- endmacro %}

{#- `day` (a date column) within one of `weeks` or up to `extra_days` after it: literal dates, so that
    DuckDB skips the week files of other weeks by their statistics; true for none (every week), false
    for no weeks. -#}
{% macro days_of_weeks(day, weeks, extra_days) -%}
    {%- if weeks is none -%}
        true
    {%- elif not weeks -%}
        false
    {%- else -%}
        ({% for week in weeks %}{{ " or " if not loop.first }}{{ day }} between cast('{{ week }}' as date)
            and cast('{{ week }}' as date) + {{ 6 + extra_days }}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- The pre-hook: the rows of the weeks computed anew go first (all rows when every week is). -#}
{% macro delete_callback_weeks() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ days_of_weeks('call_date', callback_weeks(), 0) }}
    {%- endif -%}
{%- endmacro %}
