select
    cast(username as varchar) as username,
    cast(staff_role as varchar) as staff_role
from {{ source('procall', 'directory_staff') }}
