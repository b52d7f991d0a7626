with groups as (
    select * from {{ ref('stg_procall__directory_groups') }}
),

memberships as (
    select * from {{ ref('stg_procall__directory_memberships') }}
)

select
    groups.group_name,
    groups.journal_visible_to_group,
    groups.journal_visible_to_leader,
    count(memberships.username) as member_count,
    count(case when memberships.membership_role = 'leader' then 1 end) as leader_count,
    count(case when memberships.membership_role = 'deputy' then 1 end) as deputy_count
from groups
left join memberships on groups.group_name = memberships.group_name
group by all
