{#- The week files of the two big facts (fct_calls, fct_inbound_calls; docs/warehouse.md, "Week files"):
    one Parquet file per fact and ISO week (Monday of the local call_date), written whole by the publish
    (callsight/publish/week_files.py) and listed in the served warehouse's table marts.week_files, which
    the build starts from. A build reads the previous files through these macros and computes only the
    weeks that changed. -#}

{#- The week a local calendar day belongs to: its ISO week's Monday. -#}
{% macro week_of(day) -%}
    cast(date_trunc('week', {{ day }}) as date)
{%- endmacro %}

{#- The folder of the files (callsight's Settings.parts_dir; profiles.yml reads the same variable). -#}
{% macro week_files_dir() -%}
    {{ env_var('CALLSIGHT_HOME') }}/warehouse/parts
{%- endmacro %}

{#- The previous build's files of `fact` as rows (call_week, file, max_extracted_at), `file` relative to
    week_files_dir(), newest week first; none on a full refresh, in the first build, or while parsing. -#}
{% macro previous_week_files(fact) -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(listed_week_files(fact)) }}
{%- endmacro %}

{#- Every file of `fact` the previous build lists, full refresh or not. -#}
{% macro listed_week_files(fact) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set listing = adapter.get_relation(database=target.database, schema='marts', identifier='week_files') -%}
    {%- if listing is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set found = run_query(
        "select call_week, file, max_extracted_at from marts.week_files where fact = '" ~ fact
        ~ "' order by call_week desc"
    ) -%}
    {{ return(found.rows | list) }}
{%- endmacro %}

{#- The newest extraction a list of files holds: legs extracted after it are new or changed. -#}
{% macro week_files_watermark(files) -%}
    {%- set stamps = files | map(attribute=2) | reject('none') | map('string') | list -%}
    {%- if stamps -%}
        cast('{{ stamps | max }}' as timestamp)
    {%- else -%}
        cast('1900-01-01' as timestamp)
    {%- endif -%}
{%- endmacro %}

{#- A relation reading the files (a non-empty list of rows as previous_week_files gives). -#}
{% macro read_week_files(files) -%}
    read_parquet([
        {%- for file in files -%}
            '{{ (week_files_dir() ~ "/" ~ file[1]) | replace("'", "''") }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    ])
{%- endmacro %}

{#- The weeks of `fact` whose files this build writes anew (int_weeks_changed; the model calling this
    declares the dependency), as 'YYYY-MM-DD' texts; none before that table exists (parsing, linting). -#}
{% macro changed_weeks(fact) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set weeks = ref('int_weeks_changed') -%}
    {{ return(weeks_listed_in(weeks.database, weeks.schema, weeks.identifier, fact) or []) }}
{%- endmacro %}

{#- The weeks of `fact` a table of int_weeks_changed's shape lists ('YYYY-MM-DD', oldest first); none
    (not an empty list) where the table does not exist. -#}
{% macro weeks_listed_in(database, schema, identifier, fact) -%}
    {%- set weeks = adapter.get_relation(database=database, schema=schema, identifier=identifier) -%}
    {%- if weeks is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "select cast(call_week as varchar) from " ~ weeks ~ " where fact = '" ~ fact ~ "' order by call_week"
    ) -%}
    {{ return(found.columns[0].values() | list) }}
{%- endmacro %}

{#- A condition true for the rows of `fact` in the weeks this build writes anew and for rows without a
    day, the days as literal dates (DuckDB then reads only those weeks' files); 'true' where the build
    computes every week anew (a full refresh, the first build) or lists none (a published file). For
    tests (macros/tests/get_where_subquery.sql). -#}
{% macro changed_weeks_condition(fact) -%}
    {%- if not execute or not previous_week_files(fact) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set weeks = changed_weeks_unreferenced(fact) -%}
    {%- if weeks is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set days = ['call_date is null'] -%}
    {%- for week in weeks -%}
        {%- set monday = modules.datetime.date.fromisoformat(week) -%}
        {%- do days.append(
            "(call_date >= date '" ~ monday.isoformat() ~ "' and call_date < date '"
            ~ (monday + modules.datetime.timedelta(days=7)).isoformat() ~ "')"
        ) -%}
    {%- endfor -%}
    {{ return(days | join(' or ')) }}
{%- endmacro %}

{#- The previous build's files of the weeks of `fact` this build writes anew: what those weeks held
    before. For tests, like changed_weeks_condition. -#}
{% macro rewritten_week_files(fact) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(week_files_of(previous_week_files(fact), changed_weeks_unreferenced(fact) or [], true)) }}
{%- endmacro %}

{#- changed_weeks for tests, which cannot ref() int_weeks_changed (a test declares no dependency on
    it): none (not an empty list) in a file without it. -#}
{% macro changed_weeks_unreferenced(fact) -%}
    {{ return(weeks_listed_in(target.database, 'intermediate', 'int_weeks_changed', fact)) }}
{%- endmacro %}

{#- The files of `files` whose week is (within=true) or is not one of `weeks` ('YYYY-MM-DD'): the
    files a build reads again, or those a fact keeps unchanged. -#}
{% macro week_files_of(files, weeks, within) -%}
    {%- set chosen = [] -%}
    {%- for file in files -%}
        {%- if ((file[0] | string) in weeks) == within -%}
            {%- do chosen.append(file) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(chosen) }}
{%- endmacro %}
