{{ config(materialized='table') }}

-- The legs that changed since the previous build: added or changed in the journal (extracted after the
-- newest leg the previous build holds) or gone from it (deleted at the source, expired, erased). Their
-- weeks and chains before and now decide which week files of the facts are written anew. In the first
-- build and on a full refresh every leg is new.
{%- set previous = previous_week_files('fct_calls') %}

with new_legs as (
    select
        call_id,
        chain_key,
        call_date,
        is_inbound
    from {{ ref('int_call_legs_enriched') }}
    where extracted_at > {{ week_files_watermark(previous) }}
),

previous_legs as (
    {% if previous %}
        select
            call_id,
            chain_key,
            call_date,
            is_inbound
        from {{ read_week_files(previous) }}
    {% else %}
        select * from new_legs
        where false
    {% endif %}
),

-- against the staged journal, not the enriched legs: the same legs, without their time-zone joins
gone_legs as (
    select call_id from previous_legs
    where
        call_id not in (select journal.call_id from {{ ref('stg_procall__calls') }} as journal)
),

changed as (
    select new_legs.call_id from new_legs
    union
    select gone_legs.call_id from gone_legs
)

select
    changed.call_id,
    new_legs.chain_key as chain_key_now,
    {{ week_of('new_legs.call_date') }} as call_week_now,
    coalesce(new_legs.is_inbound, false) as is_inbound_now,
    previous_legs.chain_key as chain_key_before,
    {{ week_of('previous_legs.call_date') }} as call_week_before,
    coalesce(previous_legs.is_inbound, false) as is_inbound_before
from changed
left join new_legs on changed.call_id = new_legs.call_id
left join previous_legs on changed.call_id = previous_legs.call_id
