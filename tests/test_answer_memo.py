"""The answer memo (superset/answer_memo.py): a chart-data answer kept whole for the viewers whose request
would get the same bytes, and for nobody else (issue 31).

Inside Superset (a child interpreter of Superset's environment on the session's metadata and warehouse,
its own data cache), over the chart-data API as the browser calls it: every answer the memo gives is byte for
byte the one Superset gives without it - for two viewers of one visibility set (one answered from what the
other's request computed), a viewer of another set, an analyst and the admin. As an attacker would try it:
a custom SQL metric refused by the SQL guard stays refused; a revoked grant, a dataset's SQL edited, an
ownership given and a dashboard edited each count from the next request; a CSV export
or a forced request is never answered from it (the forced result's answer is kept for the next request); a
publish during a request keeps and answers nothing under its key; a relative time range keys by its resolved
bounds."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from callsight.bi.runtime import SupersetEnv
from callsight.bi.warm_cache import REQUESTS_FILE, viewer_sets
from callsight.site.directory import load_directory

from .conftest import REPO_ROOT, SupersetServer
from .test_superset import expected_counts

# answer_memo.py finds key_memo as superset_config.py loads it (callsight_key_memo, with callsight_lru).
for _name, _file in (("callsight_lru", "lru.py"), ("callsight_key_memo", "key_memo.py")):
    if _name not in sys.modules:
        _spec = importlib.util.spec_from_file_location(_name, REPO_ROOT / "superset" / _file)
        sys.modules[_name] = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(sys.modules[_name])
_spec = importlib.util.spec_from_file_location("callsight_answer_memo_test", REPO_ROOT / "superset" / "answer_memo.py")
answer_memo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(answer_memo)

QUERY = {"metrics": ["count"], "columns": ["agent_username"], "filters": [], "row_limit": 100}
BODY = {"datasource": {"id": 1, "type": "table"}, "queries": [QUERY], "form_data": {"slice_id": 3}}


def test_only_a_plain_json_request_of_a_query_of_its_own_may_be_kept() -> None:
    assert answer_memo.plain_body(BODY)
    assert answer_memo.plain_body({**BODY, "result_format": "json", "result_type": "full", "force": False})
    assert answer_memo.plain_body({**BODY, "force": "false"})  # as Superset's schema reads it
    for refused in (
        {**BODY, "force": True},  # Superset computes it again
        {**BODY, "force": "true"},
        {**BODY, "force": "maybe"},  # Superset refuses it
        {**BODY, "force": ["no"]},
        {**BODY, "result_format": "csv"},  # an export
        {**BODY, "result_type": "samples"},
        {**BODY, "queries": []},
        {**BODY, "queries": [{"slice_id": 3}]},  # the chart's saved query, read from the metadata
        {**BODY, "queries": [{**QUERY, "annotation_layers": [{"name": "a"}]}]},
        {**BODY, "queries": [{**QUERY, "extras": {"where": "{{ current_username() }}"}}]},  # Jinja of its own
        {**BODY, "queries": [{**QUERY, "extras": {"relative_start": "now"}}]},
        {**BODY, "datasource": "1__table"},
        [BODY],
    ):
        assert not answer_memo.plain_body(refused), refused


def test_every_time_range_of_the_queries_is_found_with_its_shift() -> None:
    body = {
        **BODY,
        "form_data": {"time_range": "Last year"},  # the form data's does not make the query
        "queries": [
            {**QUERY, "time_range": "Last week", "time_shift": "1 day ago"},
            {**QUERY, "filters": [{"col": "start_time_local", "op": "TEMPORAL_RANGE", "val": "Last month"}]},
            {**QUERY, "filters": [{"col": "agent", "op": "IN", "val": ["Last day"]}]},
        ],
    }
    assert answer_memo.time_ranges(body) == [("Last week", "1 day ago"), ("Last month", None)]


def test_a_result_just_computed_is_kept_as_its_next_cache_hit_reads_and_a_failure_not_at_all() -> None:
    fresh = {"cache_key": "k", "cached_dttm": None, "queried_dttm": "2026-12-07T03:00:00+00:00", "is_cached": None}
    fresh |= {"status": "success", "error": None, "data": [{"n": 1}]}
    stored = {"k": "2026-12-07T03:00:01"}.get  # Superset's cache stamps the value when it stores it
    hit = answer_memo.as_cache_hit([fresh], stored)
    assert hit == [{**fresh, "cached_dttm": "2026-12-07T03:00:01", "is_cached": True}]
    assert list(hit[0]) == list(fresh), "the keys in Superset's order"
    cached = {**fresh, "cache_key": "gone", "cached_dttm": "2026-12-06T22:00:00", "is_cached": True}
    assert answer_memo.as_cache_hit([cached], stored) == [cached]
    assert answer_memo.as_cache_hit([{**fresh, "cache_key": "gone"}], stored) is None, "not in the cache: not kept"
    assert answer_memo.as_cache_hit([cached, {**fresh, "status": "failed"}], stored) is None
    assert answer_memo.as_cache_hit([{**fresh, "error": "timeout"}], stored) is None


CHILD = r"""
import datetime, json, sys, time
from sqlalchemy import text
from superset.app import create_app

app = create_app()
memo = sys.modules["callsight_answer_memo"]
users, requests, passwords, attack_metric = json.loads(sys.stdin.read())
from superset import security_manager as sm
from superset.connectors.sqla.models import SqlaTable
from superset.extensions import cache_manager, db
from superset.utils.core import override_user

client = app.test_client()  # outside an app context, as a web worker takes requests


def heads(user):
    login = {"username": user, "password": passwords[user], "provider": "db"}
    token = client.post("/api/v1/security/login", json=login).get_json()["access_token"]
    head = {"Authorization": f"Bearer {token}"}
    head["X-CSRFToken"] = client.get("/api/v1/security/csrf_token/", headers=head).get_json()["result"]
    return head


HEADS = {u: heads(u) for u in users}
a = users[0]


def post(user, path, body, on=True):
    memo.ENABLED = on
    r = client.post(path, json=body, headers=HEADS[user])
    return [r.status_code, r.get_data(as_text=True)]


def dashboard(user, on):
    return [post(user, path, body, on) for path, body in requests]


def answered(do):  # what do() returned, and how many of its requests the memo answered
    before = memo.COUNTS["answered"]
    got = do()
    return got, memo.COUNTS["answered"] - before


def raw(sql, **params):  # a write outside Superset's models, committed at once
    with app.app_context(), db.engine.begin() as con:
        con.execute(text(sql), params)


out = {}
with app.app_context():
    cache_manager.data_cache.clear()
kept = memo.COUNTS["kept"]
out["fresh"] = dashboard(a, True)  # computed now, and kept as the next cache hit reads
out["kept_fresh"] = memo.COUNTS["kept"] - kept
own = {}
for user in users:  # Superset's own answers: computed (or not), then from its cache
    dashboard(user, False)
    own[user] = dashboard(user, False)
out["own"] = own
out["memo"] = [{u: answered(lambda: dashboard(u, True)) for u in users} for _ in range(2)]



def rows(answer):
    return [q.get("data") for q in json.loads(answer)["result"]]


# a request of the dashboard whose rows differ between the first and the third viewer
index = next(i for i, (x, y) in enumerate(zip(own[a], own[users[2]])) if rows(x[1]) != rows(y[1]))
out["index"] = index
path, body = requests[index]
# A custom SQL metric, as an attacker sends it: the SQL guard refuses it, and it is never kept.
attack = {**body, "queries": [{**body["queries"][0], "metrics": [attack_metric]}]}
kept = memo.COUNTS["kept"]
out["attack"] = [post(a, path, attack)[0] for _ in range(2)]
out["attack_kept"] = memo.COUNTS["kept"] - kept
# An export and a forced request are Superset's own; the forced one's new answer is kept for the next.
asked = memo.COUNTS["asked"]
post(a, path, {**body, "result_format": "csv"})
out["forced"] = answered(lambda: post(a, path, {**body, "force": True}))
out["export_and_force_asked"] = memo.COUNTS["asked"] - asked
out["after_force"] = [answered(lambda: post(a, path, body)), post(a, path, body, on=False)]

# Ownership of the dataset given by hand: the next request is not answered from the viewers' memo.
with app.app_context():
    member_id = sm.find_user(username=a).id
    ds = db.session.get(SqlaTable, body["datasource"]["id"])
    ds_id, ds_perm = ds.id, ds.perm
raw("INSERT INTO sqlatable_user (user_id, table_id) VALUES (:u, :t)", u=member_id, t=ds_id)
try:
    out["owner"] = answered(lambda: post(a, path, body))
finally:
    raw("DELETE FROM sqlatable_user WHERE user_id = :u AND table_id = :t", u=member_id, t=ds_id)
out["not_owner"] = answered(lambda: [post(a, path, body), post(a, path, body)])
# A dashboard edited (any write to a table the answer depends on): the next request is not answered from it.
raw("UPDATE dashboards SET published = published")
out["dashboard_edited"] = answered(lambda: post(a, path, body))

# A row-level-security clause reading the viewer's name, on no table of this request (a virtual dataset's query
# gets the clauses of the tables it reads, rendered per viewer): while one exists nothing is kept or answered.
clause = {"n": "callsight-test-user-clause", "c": "'{{ current_username() }}' <> ''", "t": datetime.datetime.now()}
raw("INSERT INTO row_level_security_filters (name, filter_type, clause, created_on, changed_on) "
    "VALUES (:n, 'Regular', :c, :t, :t)", **clause)
kept = memo.COUNTS["kept"]
try:
    out["user_clause"] = answered(lambda: [post(a, path, body)[0] for _ in range(3)])
    out["user_clause_kept"] = memo.COUNTS["kept"] - kept
finally:
    raw("DELETE FROM row_level_security_filters WHERE name = :n", n=clause["n"])
out["user_clause_gone"] = answered(lambda: [post(a, path, body)[0] for _ in range(2)])


# The dataset's SQL edited (as in Superset's dataset editor, by hand here): the next answer has the new rows.
with app.app_context():
    sql, changed_on = db.session.query(SqlaTable.sql, SqlaTable.changed_on).filter(SqlaTable.id == ds_id).one()
edit = "UPDATE tables SET sql = :s, changed_on = :c WHERE id = :i"
raw(edit, s=f"SELECT * FROM (\n{sql}\n) AS edited WHERE 1 = 0", c=datetime.datetime.now(), i=ds_id)
try:
    out["sql_edited"] = [post(a, path, body), post(a, path, body, on=False)]
finally:
    raw(edit, s=sql, c=changed_on, i=ds_id)
out["sql_restored"] = post(a, path, body)

# The dataset's SQL edited during the night's warm-up, between two of its requests (one session serves the
# whole job): the second reads the dataset afresh, as a web request does, and keeps the answer Superset gives.
from superset.commands.chart.data.get_data_command import ChartDataCommand

real_run = ChartDataCommand.run
edits = []


def run_and_edit(self, **kwargs):
    result = real_run(self, **kwargs)
    if not edits:
        edits.append(raw(edit, s=f"SELECT * FROM ({sql}\n) AS edited WHERE 1 = 0", c=datetime.datetime.now(), i=ds_id))
    return result


ChartDataCommand.run = run_and_edit
try:
    with app.app_context():
        warmed = sys.modules["callsight_warm_cache"].run_as(app, sm.find_user(username=a), [(path, body)] * 2)
    out["warmed_meanwhile"] = [warmed["answers"], answered(lambda: post(a, path, body)), post(a, path, body, on=False)]
finally:
    ChartDataCommand.run = real_run
    raw(edit, s=sql, c=changed_on, i=ds_id)

# The grant of the dataset withdrawn between two requests (a request without the dashboard, whose roles
# would grant it too): the answer kept before is not given.
bare = {**body, "form_data": {k: v for k, v in body.get("form_data", {}).items() if k != "dashboardId"}}
with app.app_context():
    (role,) = sm.find_user(username=a).roles
    role_name, granting = role.name, [pv.id for pv in role.permissions]


def grant(keep):
    with app.app_context():
        role = sm.find_role(role_name)
        role.permissions = [pv for pv in db.session.query(sm.permissionview_model).all() if keep(pv)]
        db.session.commit()
        return sorted(pv.id for pv in role.permissions)


try:
    statuses = [answered(lambda: post(a, path, bare)[0]) for _ in range(2)]
    grant(lambda pv: pv.id in granting and pv.view_menu.name != ds_perm)
    statuses.append(answered(lambda: post(a, path, bare)[0]))
finally:
    out["restored"] = grant(lambda pv: pv.id in granting) == sorted(granting)
statuses.append(answered(lambda: post(a, path, bare)[0]))
out["revoked"] = statuses


# A publish during a request (its key names the version before it): nothing answered or kept under that key.
served = sys.modules["callsight_served_warehouse"]
post(a, path, body)  # kept under the metadata's token now (the writes above replaced it)
with app.test_request_context(path, method="POST", json=body), override_user(sm.find_user(username=a)):
    memo.ENABLED = True
    key, queries = memo.answer_key(), json.loads(own[a][index][1])["result"]
    real = served.versions_now
    served.versions_now = lambda: (("published", "meanwhile"),)
    try:
        dataset = db.session.get(SqlaTable, ds_id)
        out["published_meanwhile"] = [memo.found(key) is None, memo.keep(key, dataset, queries)]
    finally:
        served.versions_now = real
    out["published_meanwhile"].append(memo.found(key) is not None)  # the version of the key: kept before


# A relative time range: the key holds its bounds as Superset resolves them now.
def key_of(body):
    with app.test_request_context("/api/v1/chart/data", method="POST", json=body):
        with override_user(sm.find_user(username=a)):
            memo.ENABLED = True
            return memo.answer_key()


last_week = {**body, "queries": [{**q, "time_range": "Last week"} for q in body["queries"]]}
keys = [key_of(last_week), key_of(last_week), key_of(body)]
saved = app.config["DEFAULT_RELATIVE_START_TIME"], app.config["DEFAULT_RELATIVE_END_TIME"]
app.config["DEFAULT_RELATIVE_START_TIME"] = app.config["DEFAULT_RELATIVE_END_TIME"] = "now"  # "now" moves
try:
    keys.append(key_of(last_week))
    time.sleep(1.1)
    keys.append(key_of(last_week))
finally:
    app.config["DEFAULT_RELATIVE_START_TIME"], app.config["DEFAULT_RELATIVE_END_TIME"] = saved
out["time_keys"] = keys

# Another deploy (callsight's Superset modules, Superset's version, the guard's layers): another key.
real_code = memo.code_version
memo.code_version = lambda: "another deploy"
try:
    out["code_keys"] = [key_of(body)]
finally:
    memo.code_version = real_code
out["code_keys"] += [key_of(body), key_of(body)]
print(json.dumps(out))
"""


def difference(got: list, want: list) -> str:
    """Where two lists of [status, answer] first differ, in a few characters of each."""
    for (s1, a1), (s2, a2) in zip(got, want, strict=True):
        if (s1, a1) != (s2, a2):
            at = next((i for i, (x, y) in enumerate(zip(a1, a2, strict=False)) if x != y), min(len(a1), len(a2)))
            return f"{s1} vs {s2} at {at}: ...{a1[max(0, at - 80) : at + 80]!r} vs ...{a2[max(0, at - 80) : at + 80]!r}"
    return ""


def rows(answer: str) -> list:
    return [q.get("data") for q in json.loads(answer)["result"]]


@pytest.fixture(scope="module")
def memo_run(superset_server: SupersetServer) -> dict:
    from callsight.bi.api import SupersetClient
    from callsight.bi.warm_cache import capture

    s = superset_server
    settings = s.site.settings
    path = settings.superset_home / REQUESTS_FILE
    if path.exists():
        captured = [(r["path"], r["body"]) for r in json.loads(path.read_text())["requests"]]
    else:  # this module alone: capture as the night does
        admin = SupersetClient(s.url).login("admin", s.admin_password)
        captured = [(r.path, r.body) for r in capture(settings, s.url, s.admin_password, admin, ("agenten",))]
    directory = load_directory(settings.effective_directory_path)
    special = {*directory.admins, *directory.analysts, *(u for g in directory.groups for u in g.leaders + g.deputies)}
    sets = {v: name for v, name in viewer_sets(settings.served_db).items() if v not in special}
    by_set: dict[str, list[str]] = {}
    for viewer, name in sorted(sets.items()):
        by_set.setdefault(name, []).append(viewer)
    # two members who may see the same agents (a group whose members see each other), one who sees others
    a, b = next(v for v in by_set.values() if len(v) >= 2 and len(expected_counts(s, v[0])) > 1)[:2]
    c = next(v for v in sorted(sets) if sets[v] != sets[a] and expected_counts(s, v) != expected_counts(s, a))
    users = [a, b, c, directory.analysts[0], "admin"]
    passwords = {u: s.admin_password if u == "admin" else s.user_password for u in users}
    attack_metric = {"expressionType": "SQL", "label": "x", "sqlExpression": "(SELECT count(*) FROM marts.fct_calls)"}
    r = subprocess.run(
        [str(settings.superset_venv / "bin" / "python"), "-c", CHILD],
        input=json.dumps([users, captured, passwords, attack_metric]),
        capture_output=True,
        text=True,
        env=SupersetEnv(settings, s.secret_key).environ(),
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return {"users": users, "captured": captured, **json.loads(r.stdout.strip().splitlines()[-1])}


def test_every_answer_of_the_memo_is_superset_s_own_byte_for_byte(memo_run: dict) -> None:
    users, own, n = memo_run["users"], memo_run["own"], len(memo_run["captured"])
    a, b, c = users[:3]
    # a browser may send a request twice in one open (the capture keeps both): the second is answered
    without = sys.modules["callsight_key_memo"].without_url_params
    distinct = len({json.dumps([path, without(body)], sort_keys=True) for path, body in memo_run["captured"]})
    assert all(status == 200 for status, _ in memo_run["fresh"]), memo_run["fresh"]
    assert memo_run["kept_fresh"] == distinct, "every request of the dashboard is kept after it was computed"
    first, second = memo_run["memo"]
    for user in users:
        assert all(status == 200 for status, _ in own[user]), (user, own[user])
        assert first[user][0] == own[user], (user, difference(first[user][0], own[user]))
        assert second[user][0] == own[user], (user, difference(second[user][0], own[user]))
        assert second[user][1] == n, (user, "asked again: each answered from the memo")
    assert first[a][1] == first[b][1] == n, "b gets what a's request computed: the same set and roles"
    for user in users[2:]:
        assert first[user][1] == n - distinct, f"{user} has another set or role: nothing of a's is theirs"
    # the viewers really differ, so a memo keyed without the viewer would show it
    assert any(rows(x[1]) != rows(y[1]) for x, y in zip(own[a], own[c], strict=True)), "a and c see other calls"
    assert own[a] == own[b]


def test_a_custom_sql_metric_is_refused_every_time_and_never_kept(memo_run: dict) -> None:
    assert memo_run["attack"][0] == memo_run["attack"][1] != 200, memo_run["attack"]
    assert memo_run["attack_kept"] == 0


def test_an_export_or_a_forced_request_is_superset_s_own_and_the_forced_answer_is_kept(memo_run: dict) -> None:
    assert memo_run["export_and_force_asked"] == 0
    (status, _), answered = memo_run["forced"]
    assert (status, answered) == (200, 0)
    (after, answered), own = memo_run["after_force"]
    assert answered == 1 and after == own, ("the forced result's answer", difference([after], [own]))


def test_ownership_and_an_edited_dashboard_count_from_the_next_request(memo_run: dict) -> None:
    own = memo_run["own"][memo_run["users"][0]][memo_run["index"]]
    (status, answer), answered = memo_run["owner"]
    assert (status, answered) == (200, 0), "an owner's request is their own"
    assert rows(answer) == rows(own[1])
    (first, again), answered = memo_run["not_owner"]
    assert first == again and answered >= 1, "the ownership taken back: the viewers' memo again"
    assert rows(first[1]) == rows(own[1])
    (status, answer), answered = memo_run["dashboard_edited"]
    assert (status, answered) == (200, 0) and rows(answer) == rows(own[1])


def test_a_row_level_security_clause_reading_the_viewer_anywhere_keeps_nothing(memo_run: dict) -> None:
    # while it exists every request is Superset's own (computed or from its cache), none kept or answered
    assert memo_run["user_clause"] == [[200, 200, 200], 0]
    assert memo_run["user_clause_kept"] == 0
    # removed (a new token): the first request computes and keeps, the second is answered from the memo
    assert memo_run["user_clause_gone"] == [[200, 200], 1]


def test_the_warm_up_reads_a_dataset_edited_during_it_afresh(memo_run: dict) -> None:
    kept, (memo, answered), own = memo_run["warmed_meanwhile"]
    assert kept == 2  # the first request's answer under the token before the edit, the second's after it
    assert answered == 1 and memo[0] == own[0] == 200
    before = memo_run["own"][memo_run["users"][0]][memo_run["index"]]
    assert rows(memo[1]) == rows(own[1]) == [[]] * len(rows(before[1])), "the edited SQL's rows: none"


def test_a_dataset_edited_counts_from_the_next_request(memo_run: dict) -> None:
    own = memo_run["own"][memo_run["users"][0]][memo_run["index"]]
    with_memo, without = memo_run["sql_edited"]
    assert with_memo[0] == without[0] == 200 and rows(own[1]) != [[]]
    assert rows(with_memo[1]) == rows(without[1]) == [[]] * len(rows(own[1])), "the edited SQL's rows: none"
    assert memo_run["sql_restored"][0] == 200 and rows(memo_run["sql_restored"][1]) == rows(own[1])


def test_a_grant_withdrawn_refuses_the_next_request_whatever_the_memo_holds(memo_run: dict) -> None:
    (s1, _), (s2, answered2), (s3, _), (s4, _) = memo_run["revoked"]
    assert [s1, s2, s3, s4] == [200, 200, 403, 200], memo_run["revoked"]
    assert answered2 == 1, "the second request was answered from the memo"
    assert memo_run["restored"]


def test_a_publish_during_a_request_keeps_and_answers_nothing_under_its_key(memo_run: dict) -> None:
    assert memo_run["published_meanwhile"] == [True, False, True]


def test_a_relative_time_range_keys_by_its_bounds_now(memo_run: dict) -> None:
    same1, same2, other, now1, now2 = memo_run["time_keys"]
    assert same1 == same2 and same1 is not None and other not in (None, same1)
    assert None not in (now1, now2) and now1 != now2 != same1, "bounds that moved: another key"


def test_another_deploy_keys_anew(memo_run: dict) -> None:
    other, now, again = memo_run["code_keys"]
    assert now == again and other != now
