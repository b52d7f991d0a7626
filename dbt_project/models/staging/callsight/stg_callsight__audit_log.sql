with source as (
    select * from {{ source('callsight', 'audit_log') }}
),

renamed as (
    select
        cast(seq as bigint) as audit_seq,
        cast(event_id as varchar) as event_id,
        cast(recorded_at as timestamp) as recorded_at_utc,
        cast(kind as varchar) as event_kind,
        cast(subject as varchar) as subject,
        cast(detail as varchar) as detail_json,
        cast(previous_hash as varchar) as previous_hash,
        cast(entry_hash as varchar) as entry_hash
    from source
)

select * from renamed
