select
    cast(username as varchar) as username,
    cast(display_name as varchar) as display_name
from {{ source('procall', 'directory_users') }}
