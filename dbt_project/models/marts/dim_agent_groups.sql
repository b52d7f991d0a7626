-- Bridge between agents and groups (an agent can be in several groups): filter calls by group.
select
    group_name,
    username as agent_username,
    membership_role
from {{ ref('stg_procall__directory_memberships') }}
