-- Quarantined journal rows by day and reason, for admins (no row content). The day is the call's
-- start day when its start time could be read, else the day it was extracted.
with quarantined as (
    select * from {{ ref('stg_callsight__quarantine') }}
)

select
    coalesce(
        cast({{ dbt.safe_cast('start_time_text', api.Column.translate_type('timestamp')) }} as date),
        cast(extracted_at_utc as date)
    ) as call_date,
    reason,
    run_id,
    min(extracted_at_utc) as first_extracted_at_utc,
    count(*) as quarantined_rows
from quarantined
group by 1, 2, 3
