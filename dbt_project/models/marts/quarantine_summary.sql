-- Quarantined journal rows by day, reason and run, for admins (no row content). The day is the call's
-- start day when its start time could be read, else the day it was extracted; rows no partition day can
-- hold (unplaced: no usable StartTime or ID, or one far ahead) count on the day they were first refused.
-- The age is measured to the last night that read the rows, so a rebuild gives the same figures.
with quarantined as (
    select * from {{ ref('stg_callsight__quarantine') }}
),

grouped as (
    select
        case
            when is_unplaced then cast(first_quarantined_at_utc as date)
            else coalesce(
                cast({{ dbt.safe_cast('start_time_text', api.Column.translate_type('timestamp')) }} as date),
                cast(extracted_at_utc as date)
            )
        end as call_date,
        reason,
        run_id,
        min(extracted_at_utc) as first_extracted_at_utc,
        count(*) as quarantined_rows,
        count(case when is_unplaced then 1 end) as unplaced_rows,
        min(first_quarantined_at_utc) as since,
        max(extracted_at_utc) as last_at
    from quarantined
    group by 1, 2, 3
)

select
    call_date,
    reason,
    run_id,
    first_extracted_at_utc,
    quarantined_rows,
    unplaced_rows,
    since as oldest_quarantined_at_utc,
    {{ dbt.datediff('since', 'last_at', 'day') }} as oldest_age_days
from grouped
