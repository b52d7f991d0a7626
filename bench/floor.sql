-- The floor: the headline KPIs per agent and day in one bare DuckDB script, straight from the raw
-- journal table `journal` (ProCall columns as text). Same rules as the warehouse marts
-- (fct_inbound_calls, fct_callbacks): chains by TrackerID, the call belongs to its first leg, answered
-- when any leg was, wait from the first signalling to the connect of the answering leg on UTC instants,
-- callbacks by the digits of the number within the window; private calls have no number to match.
-- Variables (SET VARIABLE): tz, sl_threshold, short_abandon, callback_hours, private_lines (list),
-- mask_private (boolean).
create or replace temp table floor_legs as
with typed as (
    select
        "ID" as id,
        coalesce("TrackerID", 'leg:' || cast("ID" as varchar)) as chain,
        "CTIServerUserName" as agent,
        cast("StartTime" as timestamp) as start_local,
        cast("ConnectTime" as timestamp) as connect_local,
        cast("StopTime" as timestamp) as stop_local,
        cast("Outbound" as integer) = 0 as inbound,
        cast("Internal" as integer) = 1 as internal,
        coalesce(cast("DurationConnected" as integer), 0) > 0 as answered,
        (cast("PrivateCall" as integer) = 1 or list_contains(cast(getvariable('private_lines') as varchar []), "LineNumber"))
            as private,
        "PhoneNumber" as phone
    from journal
)

select
    id,
    chain,
    agent,
    inbound,
    internal,
    answered,
    cast(start_local as date) as call_date,
    cast(timezone('UTC', timezone(getvariable('tz'), start_local)) as timestamp) as start_utc,
    cast(timezone('UTC', timezone(getvariable('tz'), connect_local)) as timestamp) as connect_utc,
    coalesce(
        cast(timezone('UTC', timezone(getvariable('tz'), stop_local)) as timestamp),
        cast(timezone('UTC', timezone(getvariable('tz'), start_local)) as timestamp)
    ) as stop_utc,
    case
        when phone is null or phone like '%X%' or (private and getvariable('mask_private')) then null
        else nullif(regexp_replace(phone, '[^0-9]', '', 'g'), '')
    end as phone_key
from typed;

create or replace temp table floor_chains as
select
    chain,
    arg_min(agent, (start_utc, id)) as agent,
    arg_min(call_date, (start_utc, id)) as call_date,
    arg_min(internal, (start_utc, id)) as internal,
    arg_min(phone_key, (start_utc, id)) as phone_key,
    min(start_utc) as start_utc,
    bool_or(answered) as answered,
    date_diff('second', min(start_utc), arg_min(connect_utc, (connect_utc, id)) filter (where answered)) as wait,
    date_diff('second', min(start_utc), max(stop_utc)) as signalled
from floor_legs
where inbound
group by chain;

create or replace temp table floor_callbacks as
select m.chain
from floor_chains as m
where
    not m.answered and not m.internal and m.phone_key is not null
    and exists (
        select 1
        from floor_legs as l
        where
            l.phone_key = m.phone_key
            and l.chain <> m.chain
            and not l.internal
            and (not l.inbound or l.answered)
            and l.start_utc > m.start_utc
            and l.start_utc <= m.start_utc + to_hours(getvariable('callback_hours'))
    );

create or replace table floor_kpis as
select
    c.agent as agent_username,
    c.call_date,
    count(*) as calls,
    count(*) filter (where c.answered) as answered,
    count(*) filter (where not c.answered) as missed,
    coalesce(sum(c.wait) filter (where c.answered), 0) as wait_seconds,
    count(*) filter (where c.answered and c.wait <= getvariable('sl_threshold')) as within_service_level,
    count(*) filter (where c.answered or c.signalled >= getvariable('short_abandon')) as service_level_base,
    count(*) filter (where not c.answered and not c.internal) as missed_external,
    count(*) filter (where not c.answered and not c.internal and c.phone_key is not null) as callback_possible,
    count(cb.chain) as called_back
from floor_chains as c
left join floor_callbacks as cb on c.chain = cb.chain
group by c.agent, c.call_date;
