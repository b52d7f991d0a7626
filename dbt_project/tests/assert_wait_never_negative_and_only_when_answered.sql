-- A call waits (wait_seconds) exactly when it was answered, never a negative time: the rows of the
-- weeks this build writes anew (changed_weeks_condition; the others passed when their files were written).
select chain_key, is_answered, wait_seconds
from {{ ref('fct_inbound_calls') }}
where ({{ changed_weeks_condition('fct_inbound_calls') }})
    and ((is_answered and (wait_seconds is null or wait_seconds < 0))
    or (not is_answered and wait_seconds is not null))
