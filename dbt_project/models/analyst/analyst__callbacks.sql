{{ config(alias='callbacks') }}
-- fct_callbacks for analysts' SQL: agents under the labels analysts may see, no usernames.
select
    callbacks.chain_key,
    callbacks.call_date,
    callbacks.missed_at_local,
    callbacks.missed_at_utc,
    callbacks.is_private,
    callbacks.contact_company,
    callbacks.project_id,
    callbacks.is_callback_possible,
    callbacks.is_called_back,
    callbacks.callback_kind,
    callbacks.callback_time_utc,
    callbacks.seconds_to_callback,
    agent.analyst_label as agent,
    callback_by.analyst_label as callback_by
from {{ portable_ref('fct_callbacks') }} as callbacks
left join {{ portable_ref('agent_labels') }} as agent on callbacks.agent_username = agent.agent_username
left join {{ portable_ref('agent_labels') }} as callback_by
    on callbacks.callback_by_username = callback_by.agent_username
