{{ config(alias='inbound_calls') }}
-- fct_inbound_calls for analysts' SQL: agents under the labels analysts may see, no usernames; the
-- caller's number as the dashboards show it and its keyed hash (as in analyst.calls), not the number.
select
    calls.chain_key,
    calls.first_call_id,
    calls.start_time_local,
    calls.start_time_utc,
    calls.call_date,
    calls.call_hour,
    calls.iso_weekday,
    calls.is_internal,
    calls.call_scope,
    calls.leg_count,
    calls.is_answered,
    calls.is_missed,
    calls.is_answered_by_colleague,
    calls.wait_seconds,
    calls.signalled_seconds,
    calls.counts_for_service_level,
    calls.is_within_service_level,
    calls.talk_seconds,
    calls.phone_number_display as phone_number,
    case when not calls.is_private then number_keys.number_key end as number_key,
    calls.contact_company,
    calls.project_id,
    calls.project_name,
    calls.is_private,
    calls.extracted_at,
    agent.analyst_label as agent,
    answered_by.analyst_label as answered_by
from {{ portable_ref('fct_inbound_calls') }} as calls
left join {{ portable_ref('agent_labels') }} as agent on calls.agent_username = agent.agent_username
left join {{ portable_ref('agent_labels') }} as answered_by
    on calls.answered_by_username = answered_by.agent_username
left join {{ portable_ref('number_keys') }} as number_keys on calls.phone_match_key = number_keys.phone_match_key
