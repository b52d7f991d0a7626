-- The audit log for admins, data-protection officers and works councils: nightly runs (started,
-- finished with status and row counts), erasure requests, provisioning changes. No personal data.
-- Built before the run publishes, so a run's own "finished" entry appears with the next run.
with entries as (
    select * from {{ ref('stg_callsight__audit_log') }}
)

select
    audit_seq,
    event_id,
    recorded_at_utc,
    {{ utc_to_local('recorded_at_utc', var('timezone')) }} as recorded_at_local,
    event_kind,
    subject,
    {{ json_text('detail_json', 'event') }} as event_name,
    {{ json_text('detail_json', 'status') }} as event_status,
    detail_json,
    previous_hash,
    entry_hash
from entries
