"""superset/access_memo.py inside Superset (issue 31): a chart-data request asks the metadata DB each
permission question once, gets Superset's own answers for every kind of viewer - several viewers inside one
request, as the night's warm-up runs them - and the next request asks none while nothing changed; a
permission revoked, a role taken by hand or a row-level security clause changed by hand between two requests
counts from the next one. Run in the session's Superset metadata, in a child interpreter of Superset's
environment."""

from __future__ import annotations

import json
import subprocess

import pytest

from callsight.bi.runtime import SupersetEnv
from callsight.site.directory import load_directory

from .conftest import SupersetServer

pytestmark = pytest.mark.superset

CHILD = r"""
import json, sys
from sqlalchemy import event
from superset.app import create_app

app = create_app()
users, table, password = json.loads(sys.stdin.read())
from superset import security_manager as sm
from superset.connectors.sqla.models import RLSFilterTables, RowLevelSecurityFilter, SqlaTable
from superset.extensions import db
from superset.utils.core import override_user

asked = []  # the permission questions that reached the metadata DB
rls_asked = []  # the row-level security questions
with app.app_context():
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda conn, cur, sql, params, ctx, many: asked.append(sql) if "ab_permission_view_role" in sql else None,
    )
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda conn, cur, sql, params, ctx, many: rls_asked.append(sql) if "rls_filter_roles" in sql else None,
    )


def raw(sql, **params):  # a write outside Superset's models, committed at once
    from sqlalchemy import text

    with app.app_context(), db.engine.begin() as con:
        con.execute(text(sql), params)


def answers(ds):
    return [
        sm.can_access_all_datasources(), sm.can_access_all_databases(), sm.can_access_database(ds.database),
        sm.can_access_schema(ds), sm.can_access_datasource(ds), sm.can_access("can_read", "Chart"),
        sm.can_access("can_write", "Dashboard"), sm.can_access("menu_access", "SQL Lab"),
        sm.can_access("all_query_access", "all_query_access"),
        sorted(sm.user_view_menu_names("datasource_access")), sorted(sm.user_view_menu_names("schema_access")),
        [list(f) for f in sm.get_rls_filters(rls_ds)],
    ]


out = {"own": {}, "memo": {}, "again": {}, "asked_own": {}, "asked_memo": {}, "next": {}}
with app.app_context():
    ds = db.session.query(SqlaTable).filter_by(table_name=table).one()
    # a dataset under the viewers' row-level security filter (the members' own and group calls)
    regular = (
        db.session.query(RLSFilterTables.c.table_id)
        .join(RowLevelSecurityFilter, RowLevelSecurityFilter.id == RLSFilterTables.c.rls_filter_id)
        .filter(RowLevelSecurityFilter.filter_type == "Regular")
    )
    rls_ds = db.session.query(SqlaTable).filter(SqlaTable.id.in_(regular)).order_by(SqlaTable.id).first()
    for user in users:  # Superset's own answers: outside a chart-data request nothing is kept
        with app.test_request_context("/api/v1/dashboard/", method="GET"), override_user(sm.find_user(username=user)):
            asked.clear()
            out["own"][user] = answers(ds) + [answers(ds) == answers(ds)]
            out["asked_own"][user] = len(asked)
    with app.test_request_context("/api/v1/chart/data", method="POST"):  # all viewers in one request
        for user in users:
            with override_user(sm.find_user(username=user)):
                asked.clear()
                first = answers(ds)
                out["asked_memo"][user] = len(asked)
                out["memo"][user] = first + [first == answers(ds) == answers(ds)]
        for user in reversed(users):
            with override_user(sm.find_user(username=user)):
                asked.clear()
                out["again"][user] = {"answers": answers(ds), "asked": len(asked)}
    for user in users:  # the next chart-data request of each (its own app context, as a worker's request)
        with app.app_context(), app.test_request_context("/api/v1/chart/data", method="POST"):
            with override_user(sm.find_user(username=user)):
                asked.clear()
                rls_asked.clear()
                out["next"][user] = {"answers": answers(ds), "asked": len(asked), "rls_asked": len(rls_asked)}

    # A row-level security clause changed by hand between two requests: the next request has the new one.
    def member_rls():
        with app.app_context(), app.test_request_context("/api/v1/chart/data", method="POST"):
            with override_user(sm.find_user(username=users[0])):
                return [list(f) for f in sm.get_rls_filters(rls_ds)]

    rls_before = member_rls()
    (rls_id, _, rls_clause) = rls_before[0]
    try:
        raw("UPDATE row_level_security_filters SET clause = :c WHERE id = :i", c=rls_clause + " AND 1 = 1", i=rls_id)
        out["rls_changed"] = [rls_before, member_rls()]
    finally:
        raw("UPDATE row_level_security_filters SET clause = :c WHERE id = :i", c=rls_clause, i=rls_id)
    out["rls_restored"] = member_rls() == rls_before

    # A metadata DB without the token table (set up before it): the check finds none, and then each
    # chart-data request asks its questions again, once, and gets Superset's own answers.
    memo_mod, state = sys.modules["callsight_access_memo"], sys.modules["callsight_security_state"]
    saved_ready, saved_table = list(memo_mod._ready), state.STATE_TABLE
    try:
        memo_mod._ready.clear()
        state.STATE_TABLE = "callsight_no_such_table"
        out["no_token_table_ready"] = memo_mod._token_table_ready()
        state.STATE_TABLE = saved_table
        out["no_token"] = []
        for _ in range(2):
            with app.app_context(), app.test_request_context("/api/v1/chart/data", method="POST"):
                with override_user(sm.find_user(username=users[0])):
                    asked.clear()
                    first = answers(ds)
                    out["no_token"].append({"answers": first, "same": first == answers(ds), "asked": len(asked)})
    finally:
        state.STATE_TABLE = saved_table
        memo_mod._ready[:] = saved_ready

    # A permission revoked between two chart-data requests refuses the second: over HTTP as the member, whose
    # role's grant of the dataset is withdrawn and given back (this worker's Superset; restored in any case).
    (role,) = sm.find_user(username=users[0]).roles
    role_name, ds_id, ds_perm = role.name, ds.id, ds.perm
    granting = [pv.id for pv in role.permissions]
    out["granted_by"] = sorted({pv.permission.name for pv in role.permissions if pv.view_menu.name == ds_perm})


def grant(keep):  # the member's role with the permission views `keep` accepts
    with app.app_context():
        role = sm.find_role(role_name)
        role.permissions = [pv for pv in db.session.query(sm.permissionview_model).all() if keep(pv)]
        db.session.commit()
        return sorted(pv.id for pv in role.permissions)


body = {
    "datasource": {"id": ds_id, "type": "table"}, "force": True, "result_format": "json", "result_type": "full",
    "queries": [{"metrics": ["count"], "columns": ["agent_username"], "filters": [], "row_limit": 10000}],
}
client = app.test_client()  # outside an app context, as a web worker takes requests
token = client.post(
    "/api/v1/security/login", json={"username": users[0], "password": password, "provider": "db"}
).get_json()["access_token"]
head = {"Authorization": f"Bearer {token}"}
head["X-CSRFToken"] = client.get("/api/v1/security/csrf_token/", headers=head).get_json()["result"]
with app.app_context():
    member_id, role_id = sm.find_user(username=users[0]).id, sm.find_role(role_name).id


def status():  # one chart-data request over HTTP, and how many permission questions it asked
    asked.clear()
    return [client.post("/api/v1/chart/data", json=body, headers=head).status_code, len(asked)]


try:
    statuses = [status(), status()]
    grant(lambda pv: pv.id in granting and pv.view_menu.name != ds_perm)
    statuses.append(status())
    grant(lambda pv: pv.id in granting)
    statuses.append(status())
    out["revoked"] = statuses
    # the member's role taken and given back by hand, outside Superset's models
    raw("DELETE FROM ab_user_role WHERE user_id = :u AND role_id = :r", u=member_id, r=role_id)
    statuses = [status()]
    raw("INSERT INTO ab_user_role (user_id, role_id) VALUES (:u, :r)", u=member_id, r=role_id)
    statuses.append(status())
    out["role_taken"] = statuses
finally:
    out["restored"] = grant(lambda pv: pv.id in granting) == sorted(granting)
    with app.app_context():
        out["restored"] &= [r.id for r in sm.find_user(username=users[0]).roles] == [role_id]
print(json.dumps(out))
"""


def run_child(s: SupersetServer, users: list[str], table: str) -> dict:
    """The child's answers; it logs in as users[0] with the directory users' password."""
    settings = s.site.settings
    r = subprocess.run(
        [str(settings.superset_venv / "bin" / "python"), "-c", CHILD],
        input=json.dumps([users, table, s.user_password]),
        capture_output=True,
        text=True,
        env=SupersetEnv(settings, s.secret_key).environ(),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def memo_run(superset_server: SupersetServer) -> tuple[list[str], dict]:
    directory = load_directory(superset_server.site.settings.effective_directory_path)
    special = {*directory.admins, *directory.analysts, *(u for g in directory.groups for u in g.leaders + g.deputies)}
    member = next(u for g in directory.groups for u in g.members if u not in special)
    users = [member, directory.groups[0].leaders[0], directory.analysts[0], "admin"]
    return users, run_child(superset_server, users, "dashboard_calls")


def test_a_chart_data_request_gets_superset_s_own_answers_for_every_kind_of_viewer(memo_run) -> None:
    users, out = memo_run
    for user in users:
        assert out["own"][user][-1] and out["memo"][user][-1], (user, out)  # asked thrice: the same
        assert out["memo"][user] == out["own"][user], (user, out)
        assert out["again"][user]["answers"] == out["own"][user][:-1], (user, out)
    # the viewers really differ, so a memo keyed without the viewer would show it
    assert out["own"]["admin"][0] and not out["own"][users[0]][0], out
    assert out["own"][users[2]][7] != out["own"][users[0]][7], "the analyst has SQL Lab, the member not"


def test_each_permission_question_reaches_the_metadata_db_once_per_request(memo_run) -> None:
    users, out = memo_run
    for user in users:
        assert out["asked_memo"][user] < out["asked_own"][user] / 2, (user, out)
        assert out["again"][user]["asked"] == 0, (user, out)
    assert all(out["asked_own"][u] > 0 for u in users), out


def test_the_answers_are_kept_across_requests_and_are_superset_s_own(memo_run) -> None:
    users, out = memo_run
    for user in users:
        assert out["next"][user]["answers"] == out["own"][user][:-1], (user, out)
        assert out["next"][user]["asked"] == 0 and out["next"][user]["rls_asked"] == 0, (user, out)
    member = out["own"][users[0]]
    assert member[-4] and member[-2], "the member holds a dataset permission and has row-level security"


def test_a_permission_revoked_between_two_requests_refuses_the_next(memo_run) -> None:
    _, out = memo_run
    assert out["granted_by"] == ["datasource_access"], out
    (s1, asked1), (s2, asked2), (s3, _), (s4, _) = out["revoked"]
    assert [s1, s2, s3, s4] == [200, 200, 403, 200], out["revoked"]
    assert asked2 == 0 < asked1, "the second request's answers were kept from the first"
    assert out["restored"], out


def test_a_role_taken_by_hand_refuses_the_next_request(memo_run) -> None:
    _, out = memo_run
    assert [s for s, _ in out["role_taken"]] == [403, 200], out["role_taken"]
    assert out["restored"], out


def test_a_row_level_security_clause_changed_by_hand_counts_from_the_next_request(memo_run) -> None:
    _, out = memo_run
    before, after = out["rls_changed"]
    assert len(before) == len(after) >= 1
    assert after[0][2] == before[0][2] + " AND 1 = 1", out["rls_changed"]
    assert out["rls_restored"]


def test_without_a_token_table_each_request_asks_once_and_gets_superset_s_own_answers(memo_run) -> None:
    users, out = memo_run
    assert out["no_token_table_ready"] is False, "a metadata DB without the token table must not be trusted"
    for run in out["no_token"]:
        assert run["answers"] == out["own"][users[0]][:-1] and run["same"], out["no_token"]
        assert 0 < run["asked"] <= out["asked_memo"][users[0]], ("asked again, once per request", out["no_token"])
