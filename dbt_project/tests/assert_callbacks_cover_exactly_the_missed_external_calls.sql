-- fct_callbacks has one row for every missed external inbound call and for nothing else.
with missed as (
    select chain_key from {{ ref('fct_inbound_calls') }}
    where is_missed and not is_internal
)

select
    coalesce(missed.chain_key, callbacks.chain_key) as chain_key
from missed
full outer join {{ ref('fct_callbacks') }} as callbacks on missed.chain_key = callbacks.chain_key
where missed.chain_key is null or callbacks.chain_key is null
