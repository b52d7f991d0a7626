"""Which requests the key memo (superset/key_memo.py) may answer: only where every Jinja template that can
put values into a chart's cache key uses callsight's own names, none of which reads who the user is beyond
their roles and visibility set. The memo against Superset's own keys, inside Superset: tests/test_shared_cache.py."""

from __future__ import annotations

import importlib.util
import sys

from callsight.bi.agent_macros import AUDIENCE_JINJA, VISIBLE_AGENTS
from callsight.bi.users import RLS_VIEWER_CLAUSE

from .conftest import REPO_ROOT

# key_memo.py finds its LRU class as superset_config.py loads it (callsight_lru).
if "callsight_lru" not in sys.modules:
    _lru_spec = importlib.util.spec_from_file_location("callsight_lru", REPO_ROOT / "superset" / "lru.py")
    sys.modules["callsight_lru"] = importlib.util.module_from_spec(_lru_spec)
    _lru_spec.loader.exec_module(sys.modules["callsight_lru"])
_spec = importlib.util.spec_from_file_location("callsight_key_memo_test", REPO_ROOT / "superset" / "key_memo.py")
key_memo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(key_memo)

GROUP_FILTER = "{% set groups = filter_values('group_name', remove_filter=True) %}{{ groups|where_in }}"


def test_callsights_own_templates_are_answered_from_the_memo() -> None:
    assert key_memo.jinja_names(RLS_VIEWER_CLAUSE) == {"cache_key_wrapper", "callsight_visibility_set"}
    assert key_memo.jinja_names(AUDIENCE_JINJA + "{{ callsight_audience }}") == {"current_user_roles"}
    assert key_memo.allowed(["SELECT 1", "1 = 0", VISIBLE_AGENTS, RLS_VIEWER_CLAUSE, GROUP_FILTER, AUDIENCE_JINJA])


def test_a_template_reading_the_user_the_url_the_time_or_another_dataset_is_built_by_superset() -> None:
    for text in (
        "agent_username = '{{ current_username() }}'",
        "viewer = {{ current_user_id() }}",
        "mail = '{{ current_user_email() }}'",
        "{{ cache_key_wrapper(url_param('agent')) }}",
        "{{ current_user_rls_rules() }}",
        "call_date >= '{{ from_dttm }}'",
        "{% if metrics %}1{% endif %}",
        "{{ metric('calls', 12) }}",
        "{{ dataset(3) }}",
        "{{ broken",  # does not parse
    ):
        assert not key_memo.allowed([VISIBLE_AGENTS, text]), text


def test_names_set_inside_the_template_are_its_own() -> None:
    assert key_memo.jinja_names("{% set x = current_user_roles() %}{{ x }}") == {"current_user_roles"}
    assert key_memo.jinja_names("{% set from_dttm = 1 %}{{ from_dttm }}") == frozenset()


def test_a_visits_own_url_parameters_are_not_part_of_the_key() -> None:
    body = {
        "datasource": {"id": 8, "type": "table"},
        "queries": [{"columns": ["group_name"], "url_params": {"native_filters_key": "q1"}}],
        "form_data": {"viz_type": "filter_select", "url_params": {"native_filters_key": "abc"}, "dashboardId": 1},
    }
    stripped = key_memo.without_url_params(body)
    assert stripped == {
        "datasource": {"id": 8, "type": "table"},
        "queries": [{"columns": ["group_name"]}],
        "form_data": {"viz_type": "filter_select", "dashboardId": 1},
    }
    assert body["form_data"]["url_params"] == {"native_filters_key": "abc"}, "the request itself is left as sent"
    assert key_memo.without_url_params({"queries": "odd", "form_data": None}) == {"queries": "odd", "form_data": None}
