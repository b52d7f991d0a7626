with source as (
    select * from {{ source('callsight', 'quarantine') }}
)

select
    source_id,
    start_time_text,
    reason,
    _unplaced as is_unplaced,
    _run_id as run_id,
    coalesce(_first_quarantined_at, _extracted_at) as first_quarantined_at_utc,
    _extracted_at as extracted_at_utc
from source
