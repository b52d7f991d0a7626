-- One row per number analysts may match calls by: the digits (phone_match_key) of a non-private leg's
-- number and its key, a keyed hash with the site's salt (macro keyed_number_hash). The analyst views
-- show the key, never the digits. Computed here once per number and night, not per leg and query; the
-- salt is read from the raw store while building and is not copied into the warehouse.
with numbers as (
    select distinct phone_match_key
    from {{ ref('fct_calls') }}
    where phone_match_key is not null and not is_private
)

select
    numbers.phone_match_key,
    {{ keyed_number_hash('salt.salt', 'numbers.phone_match_key') }} as number_key
from numbers
cross join {{ ref('stg_callsight__number_key_salt') }} as salt
