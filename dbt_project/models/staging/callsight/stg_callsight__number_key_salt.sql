-- The site's salt of the analysts' number keys (one row). A staging view over the raw store: dropped
-- before publish, so the salt never reaches the served warehouse.
select cast(salt as varchar) as salt
from {{ source('callsight', 'number_key_salt') }}
