-- Each viewer's visibility set: the agents security.viewer_agents lets them see, named by a hash of the
-- sorted usernames. Superset keys cached chart results by this name, not by the viewer, so viewers who
-- see the same agents share one cached result (docs/performance.md, "Shared cache").
select
    viewer_username,
    md5(string_agg(agent_username, chr(31) order by agent_username)) as visibility_set,
    count(*) as agents
from {{ ref('viewer_agents') }}
group by viewer_username
