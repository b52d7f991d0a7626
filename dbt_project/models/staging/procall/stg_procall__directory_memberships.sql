select
    cast(group_name as varchar) as group_name,
    cast(username as varchar) as username,
    cast(membership_role as varchar) as membership_role
from {{ source('procall', 'directory_memberships') }}
