-- "Count the call, not the legs": every inbound leg's chain is exactly one row of fct_inbound_calls,
-- and the legs add up to the calls' leg counts.
with legs as (
    select
        chain_key,
        count(*) as leg_count
    from {{ ref('fct_calls') }}
    where is_inbound
    group by chain_key
)

select
    coalesce(legs.chain_key, calls.chain_key) as chain_key,
    legs.leg_count as legs_in_fct_calls,
    calls.leg_count as legs_in_fct_inbound_calls
from legs
full outer join {{ ref('fct_inbound_calls') }} as calls on legs.chain_key = calls.chain_key
where legs.leg_count is distinct from calls.leg_count
