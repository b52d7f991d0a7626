select chain_key, is_answered, wait_seconds
from {{ ref('fct_inbound_calls') }}
where (is_answered and (wait_seconds is null or wait_seconds < 0))
    or (not is_answered and wait_seconds is not null)
