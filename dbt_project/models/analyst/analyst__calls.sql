{{ config(alias='calls') }}
-- fct_calls for analysts' SQL: the agent under the label analysts may see (security.agent_labels), no
-- usernames; numbers as the dashboards show them (last digits XXX, none for a private call) and, to match
-- calls of one number, its keyed hash (security.number_keys), never the number itself. Columns are
-- listed, not starred: a new column of the mart reaches analysts only when added here.
select
    calls.call_id,
    calls.chain_key,
    calls.start_time_local,
    calls.start_time_utc,
    calls.call_date,
    calls.call_hour,
    calls.iso_weekday,
    calls.direction,
    calls.is_inbound,
    calls.is_internal,
    calls.call_scope,
    calls.is_answered,
    calls.ring_seconds,
    calls.talk_seconds,
    calls.phone_number_display as phone_number,
    calls.redirecting_number_display as redirecting_number,
    case when not calls.is_private then number_keys.number_key end as number_key,
    calls.contact_company,
    calls.project_id,
    calls.project_name,
    calls.is_private,
    calls.extracted_at,
    agent.analyst_label as agent
from {{ portable_ref('fct_calls') }} as calls
left join {{ portable_ref('agent_labels') }} as agent on calls.agent_username = agent.agent_username
left join {{ portable_ref('number_keys') }} as number_keys on calls.phone_match_key = number_keys.phone_match_key
