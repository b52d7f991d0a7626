select
    cast(group_name as varchar) as group_name,
    cast(journal_visible_to_group as boolean) as journal_visible_to_group,
    cast(journal_visible_to_leader as boolean) as journal_visible_to_leader
from {{ source('procall', 'directory_groups') }}
