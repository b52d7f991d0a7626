select
    cast(username as varchar) as username,
    cast(display_name as varchar) as display_name,
    cast(pseudonym as varchar) as pseudonym
from {{ source('procall', 'directory_users') }}
