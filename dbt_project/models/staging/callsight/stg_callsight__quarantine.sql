with source as (
    select * from {{ source('callsight', 'quarantine') }}
)

select
    source_id,
    start_time_text,
    reason,
    _run_id as run_id,
    _extracted_at as extracted_at_utc
from source
