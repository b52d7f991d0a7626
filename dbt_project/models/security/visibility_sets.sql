-- The agents of each distinct visibility set: what the row-level security of a viewer with that set lets
-- through (docs/access.md).
select distinct
    viewer_sets.visibility_set,
    viewer_grants.agent_username
from {{ ref('viewer_visibility_sets') }} as viewer_sets
inner join {{ ref('viewer_agents') }} as viewer_grants
    on viewer_sets.viewer_username = viewer_grants.viewer_username
