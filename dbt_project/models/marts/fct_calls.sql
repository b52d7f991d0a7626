{{ config(
    materialized='incremental',
    unique_key='call_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where call_id not in
            (select call_id from {{ ref('int_call_legs_enriched') }}){% endif %}"
    ]
) }}

-- One row per journal leg (masked). Incremental: only legs the extract added or changed since the
-- last build are processed; legs deleted at the source are removed by the post-hook. The other leg
-- marts read this table, not int_call_legs_enriched: the view's time-zone conversions and number
-- matching then run once per changed leg, not over the whole history for every mart.
with legs as (
    select * from {{ ref('int_call_legs_enriched') }}
    {% if is_incremental() %}
        where extracted_at > (select coalesce(max(extracted_at), cast('1900-01-01' as timestamp)) from {{ this }})
    {% endif %}
)

select
    call_id,
    chain_key,
    agent_username,
    start_time_local,
    start_time_utc,
    connect_time_utc,
    stop_time_utc,
    call_date,
    call_hour,
    iso_weekday,
    case when is_inbound then 'inbound' else 'outbound' end as direction,
    is_inbound,
    is_internal,
    call_scope,
    is_answered,
    ring_seconds,
    talk_seconds,
    phone_number,
    phone_match_key,
    redirecting_number,
    {{ display_number('phone_number', 'is_private') }} as phone_number_display,
    {{ display_number('redirecting_number', 'is_private') }} as redirecting_number_display,
    contact_company,
    project_id,
    project_name,
    is_private,
    extracted_at
from legs
