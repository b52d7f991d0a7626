-- How each agent is named, by audience (docs/access.md, "Works-council mode"). The dashboards'
-- datasets and the analyst schema take the label of the viewer's role: admins see agent_name, analysts
-- analyst_label, everybody else viewer_label. With min_group_size k > 0 only agents who belong to a group
-- of at least k members are shown one by one; everyone else is merged into their group ("Gruppe: <name>",
-- "Ohne Gruppe"), so that nobody but an admin reads one person's figures out of a small team. With
-- pseudonymize_agents_for_analysts analysts see a stable pseudonym (keyed hash, org_store) instead.
with agents as (
    select
        agent_username,
        agent_name
    from {{ ref('dim_agent') }}
),

users as (
    select * from {{ ref('stg_procall__directory_users') }}
),

memberships as (
    select * from {{ ref('stg_procall__directory_memberships') }}
),

group_sizes as (
    select
        group_name,
        count(distinct username) as member_count
    from memberships
    group by group_name
),

agent_groups as (
    select
        memberships.username,
        min(memberships.group_name) as first_group,
        bool_or(group_sizes.member_count >= {{ var('min_group_size') }}) as is_in_large_group
    from memberships
    inner join group_sizes on memberships.group_name = group_sizes.group_name
    group by memberships.username
),

decided as (
    select
        agents.agent_username,
        agents.agent_name,
        users.pseudonym,
        coalesce('Gruppe: ' || agent_groups.first_group, 'Ohne Gruppe') as group_label,
        {{ var('min_group_size') }} = 0 or coalesce(agent_groups.is_in_large_group, false) as is_shown_individually
    from agents
    left join users on agents.agent_username = users.username
    left join agent_groups on agents.agent_username = agent_groups.username
),

labelled as (
    select
        agent_username,
        agent_name,
        is_shown_individually,
        group_label,
        case when is_shown_individually then agent_name else group_label end as viewer_label,
        case
            when not is_shown_individually then group_label
            when {{ var('pseudonymize_agents_for_analysts') }} then coalesce(pseudonym, 'Ehemalige Mitarbeitende')
            else agent_name
        end as analyst_label
    from decided
)

-- *_key: what the audience may group by (the username where the name is shown, else the label).
select
    agent_username,
    agent_name,
    is_shown_individually,
    viewer_label,
    analyst_label,
    case when is_shown_individually then agent_username else viewer_label end as viewer_key,
    case when analyst_label = agent_name then agent_username else analyst_label end as analyst_key
from labelled
