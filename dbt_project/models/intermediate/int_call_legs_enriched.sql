-- One row per journal leg with the time facts every KPI needs. Durations are measured on UTC
-- instants, so a call across a DST switch is not an hour too long or short; days, hours and weekdays
-- are cut on the local wall clock of the site.
--
-- When clocks go back, the local times of the repeated hour name two instants (the first pass and the
-- second). For a leg with such times, start and stop are read so that the stop is not before the start
-- and the duration comes closest to DurationTotal (without it: the shortest); the connect time lies
-- between them, closest to DurationConnected before the stop. Ties, and every other time, take the
-- second pass, as the engine's own conversion does.
with legs as (
    select * from {{ ref('stg_procall__calls') }}
),

-- The folds are joined as a subquery per use: one CTE read three times is materialized by DuckDB,
-- and then every column of this view is computed even for a reader that needs one (macro comment).
readings as (
    select
        legs.*,
        {{ local_to_utc('legs.start_time_local', var('timezone')) }} as start_plain_utc,
        {{ local_to_utc('legs.connect_time_local', var('timezone')) }} as connect_plain_utc,
        {{ local_to_utc('legs.stop_time_local', var('timezone')) }} as stop_plain_utc,
        start_fold.offset_before_seconds as start_first_offset,
        start_fold.offset_after_seconds as start_second_offset,
        connect_fold.offset_before_seconds as connect_first_offset,
        connect_fold.offset_after_seconds as connect_second_offset,
        stop_fold.offset_before_seconds as stop_first_offset,
        stop_fold.offset_after_seconds as stop_second_offset
    from legs
    left join ({{ timezone_folds(var('timezone')) }}) as start_fold -- noqa: ST05
        on
            cast(legs.start_time_local as date) = start_fold.fold_date
            and legs.start_time_local >= start_fold.fold_start_local
            and legs.start_time_local < start_fold.fold_end_local
    left join ({{ timezone_folds(var('timezone')) }}) as connect_fold -- noqa: ST05
        on
            cast(legs.connect_time_local as date) = connect_fold.fold_date
            and legs.connect_time_local >= connect_fold.fold_start_local
            and legs.connect_time_local < connect_fold.fold_end_local
    left join ({{ timezone_folds(var('timezone')) }}) as stop_fold -- noqa: ST05
        on
            cast(legs.stop_time_local as date) = stop_fold.fold_date
            and legs.stop_time_local >= stop_fold.fold_start_local
            and legs.stop_time_local < stop_fold.fold_end_local
),

passes as (
    select
        *,
        {{ utc_in_pass('start_time_local', 'start_first_offset', 'start_plain_utc') }} as start_first_utc,
        {{ utc_in_pass('start_time_local', 'start_second_offset', 'start_plain_utc') }} as start_second_utc,
        {{ utc_in_pass('connect_time_local', 'connect_first_offset', 'connect_plain_utc') }} as connect_first_utc,
        {{ utc_in_pass('connect_time_local', 'connect_second_offset', 'connect_plain_utc') }} as connect_second_utc,
        {{ utc_in_pass('stop_time_local', 'stop_first_offset', 'stop_plain_utc') }} as stop_first_utc,
        {{ utc_in_pass('stop_time_local', 'stop_second_offset', 'stop_plain_utc') }} as stop_second_utc
    from readings
),

-- Each reading of (start, stop): how far its duration is from DurationTotal; NULL if stop < start.
start_stop_scores as (
    select
        *,
        case
            when stop_second_utc >= start_second_utc
                then abs(
                    {{ dbt.datediff('start_second_utc', 'stop_second_utc', 'second') }}
                    - coalesce(duration_total_seconds, 0)
                )
        end as score_second_second,
        case
            when stop_first_utc >= start_first_utc
                then abs(
                    {{ dbt.datediff('start_first_utc', 'stop_first_utc', 'second') }}
                    - coalesce(duration_total_seconds, 0)
                )
        end as score_first_first,
        case
            when stop_second_utc >= start_first_utc
                then abs(
                    {{ dbt.datediff('start_first_utc', 'stop_second_utc', 'second') }}
                    - coalesce(duration_total_seconds, 0)
                )
        end as score_first_second,
        case
            when stop_first_utc >= start_second_utc
                then abs(
                    {{ dbt.datediff('start_second_utc', 'stop_first_utc', 'second') }}
                    - coalesce(duration_total_seconds, 0)
                )
        end as score_second_first
    from passes
),

best_start_stop as (
    select
        *,
        least(score_second_second, score_first_first, score_first_second, score_second_first) as best_score
    from start_stop_scores
),

start_stop as (
    select
        *,
        case
            when score_second_second = best_score then start_second_utc
            when score_first_first = best_score or score_first_second = best_score then start_first_utc
            else start_second_utc
        end as start_time_utc,
        case
            when score_second_second = best_score then stop_second_utc
            when score_first_first = best_score then stop_first_utc
            when score_first_second = best_score then stop_second_utc
            when score_second_first = best_score then stop_first_utc
            else stop_second_utc
        end as stop_time_utc
    from best_start_stop
),

-- Each reading of the connect time: between start and stop, as close to DurationConnected before the
-- stop as it gets (without it: the earliest).
connect_scores as (
    select
        *,
        case
            when
                connect_second_utc >= start_time_utc
                and connect_second_utc <= coalesce(stop_time_utc, connect_second_utc)
                then
                    case
                        when duration_connected_seconds is null
                            then {{ dbt.datediff('start_time_utc', 'connect_second_utc', 'second') }}
                        else abs(
                            {{ dbt.datediff('connect_second_utc', 'stop_time_utc', 'second') }}
                            - duration_connected_seconds
                        )
                    end
        end as connect_score_second,
        case
            when
                connect_first_utc >= start_time_utc
                and connect_first_utc <= coalesce(stop_time_utc, connect_first_utc)
                then
                    case
                        when duration_connected_seconds is null
                            then {{ dbt.datediff('start_time_utc', 'connect_first_utc', 'second') }}
                        else abs(
                            {{ dbt.datediff('connect_first_utc', 'stop_time_utc', 'second') }}
                            - duration_connected_seconds
                        )
                    end
        end as connect_score_first
    from start_stop
),

utc as (
    select
        *,
        case
            when connect_score_first < coalesce(connect_score_second, connect_score_first + 1) then connect_first_utc
            else connect_second_utc
        end as connect_time_utc
    from connect_scores
)

select
    call_id,
    coalesce(tracker_id, 'leg:' || cast(call_id as varchar)) as chain_key,
    agent_username,
    start_time_local,
    start_time_utc,
    connect_time_utc,
    coalesce(stop_time_utc, start_time_utc) as stop_time_utc,
    cast(start_time_local as date) as call_date,
    cast(extract(hour from start_time_local) as integer) as call_hour,
    cast(extract(isodow from start_time_local) as integer) as iso_weekday,
    not is_outbound as is_inbound,
    is_internal,
    case when is_internal then 'intern' else 'extern' end as call_scope,
    coalesce(duration_connected_seconds, 0) > 0 as is_answered,
    cast(
        greatest(0, {{ dbt.datediff('start_time_utc', 'coalesce(connect_time_utc, stop_time_utc, start_time_utc)',
            'second') }}) as integer
    ) as ring_seconds,
    cast(coalesce(duration_connected_seconds, 0) as integer) as talk_seconds,
    phone_number,
    {{ phone_match_key('phone_number') }} as phone_match_key,
    redirecting_number,
    contact_company,
    project_id,
    project_name,
    is_private,
    extracted_at
from utc
