with source as (
    select * from {{ source('procall', 'journal') }}
),

renamed as (
    select
        cast("ID" as bigint) as call_id,
        cast("TrackerID" as varchar) as tracker_id,
        -- ProCall names are case-insensitive (Active Directory); the directory holds them in lower case
        lower(trim(cast("CTIServerUserName" as varchar))) as agent_username,
        cast("StartTime" as timestamp) as start_time_local,
        cast("StopTime" as timestamp) as stop_time_local,
        cast("ConnectTime" as timestamp) as connect_time_local,
        cast("DisconnectTime" as timestamp) as disconnect_time_local,
        cast("DurationTotal" as integer) as duration_total_seconds,
        cast("DurationConnected" as integer) as duration_connected_seconds,
        cast("Outbound" as integer) = 1 as is_outbound,
        cast("Internal" as integer) = 1 as is_internal,
        cast("SuccessState" as integer) = 1 as is_success,
        cast("PrivateCall" as integer) = 1 as is_flagged_private,
        cast("_is_private" as boolean) as is_private,
        cast("LineNumber" as varchar) as line_number,
        cast("LocalNumber" as varchar) as local_number,
        cast("RedirectingNumber" as varchar) as redirecting_number,
        cast("PhoneNumber" as varchar) as phone_number,
        cast("ContactCompany" as varchar) as contact_company,
        cast("ContactEntryID" as varchar) as contact_entry_id,
        cast("ProjectID" as varchar) as project_id,
        cast("ProjectName" as varchar) as project_name,
        cast("_run_id" as varchar) as extract_run_id,
        cast("_extracted_at" as timestamp) as extracted_at
    from source
)

select * from renamed
