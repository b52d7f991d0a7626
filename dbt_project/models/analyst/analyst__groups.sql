{{ config(alias='groups') }}
-- marts.dim_group for analysts: sizes and options, no member names.
select
    group_name,
    journal_visible_to_group,
    journal_visible_to_leader,
    member_count,
    leader_count,
    deputy_count
from {{ portable_ref('dim_group') }}
