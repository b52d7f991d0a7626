-- Agents: everyone in the org directory plus anyone who appears in the journal but has left it.
with users as (
    select * from {{ ref('stg_procall__directory_users') }}
),

memberships as (
    select * from {{ ref('stg_procall__directory_memberships') }}
),

staff as (
    select * from {{ ref('stg_procall__directory_staff') }}
),

journal_agents as (
    select distinct agent_username from {{ ref('fct_calls') }}
),

everyone as (
    select username from users
    union
    select agent_username from journal_agents
),

groups_per_user as (
    select
        username,
        string_agg(group_name, ', ' order by group_name) as group_names,
        min(group_name) as primary_group,
        bool_or(membership_role in ('leader', 'deputy')) as is_group_lead
    from memberships
    group by username
)

select
    everyone.username as agent_username,
    coalesce(users.display_name, everyone.username) as agent_name,
    groups_per_user.group_names,
    groups_per_user.primary_group,
    coalesce(groups_per_user.is_group_lead, false) as is_group_lead,
    coalesce(max(staff.staff_role), 'viewer') as access_role,
    users.username is not null as is_in_directory
from everyone
left join users on everyone.username = users.username
left join groups_per_user on everyone.username = groups_per_user.username
left join staff on everyone.username = staff.username
group by all
