-- Who may see whose calls (docs/access.md, "Who sees whose calls"). Superset's RLS filter reads this table
-- with the logged-in user's name. Analysts and admins are exempt from that filter by role.
with users as (
    select username from {{ ref('stg_procall__directory_users') }}
),

memberships as (
    select * from {{ ref('stg_procall__directory_memberships') }}
),

groups as (
    select * from {{ ref('stg_procall__directory_groups') }}
),

own as (
    select
        username as viewer_username,
        username as agent_username,
        'own' as grant_reason
    from users
),

leader_grants as (
    select
        boss.username as viewer_username,
        member.username as agent_username,
        'leader:' || grp.group_name as grant_reason
    from memberships as boss
    inner join groups as grp
        on boss.group_name = grp.group_name and grp.journal_visible_to_leader
    inner join memberships as member on boss.group_name = member.group_name
    where boss.membership_role in ('leader', 'deputy')
),

group_grants as (
    select
        viewer.username as viewer_username,
        member.username as agent_username,
        'group:' || grp.group_name as grant_reason
    from memberships as viewer
    inner join groups as grp
        on viewer.group_name = grp.group_name and grp.journal_visible_to_group
    inner join memberships as member on viewer.group_name = member.group_name
),

all_grants as (
    select * from own
    union all
    select * from leader_grants
    union all
    select * from group_grants
)

select
    viewer_username,
    agent_username,
    string_agg(distinct grant_reason, ', ' order by grant_reason) as grant_reasons
from all_grants
group by viewer_username, agent_username
