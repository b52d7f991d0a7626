from pathlib import Path

import pytest
import yaml

from callsight.site.directory import load_directory
from callsight.site.policy import load_policy
from callsight.site.settings import WARMABLE_DASHBOARDS, Settings
from callsight.site.yaml_config import ConfigError

GOOD_DIRECTORY = {
    "users": [
        {"username": "anna.schmidt", "name": "Anna Schmidt", "email": "anna.schmidt@example.com"},
        {"username": "tom.berg", "name": "Tom Berg"},
        {"username": "maria.mueller", "name": "Maria Müller"},
        {"username": "erik.data", "name": "Erik Data"},
        {"username": "it.admin", "name": "IT Admin"},
    ],
    "groups": [
        {
            "name": "Vertrieb",
            "leaders": ["maria.mueller"],
            "deputies": ["tom.berg"],
            "members": ["anna.schmidt", "tom.berg", "maria.mueller"],
            "journal_visible_to_group": False,
            "journal_visible_to_leader": True,
        }
    ],
    "private_lines": ["+49 8151 3680-199"],
    "analysts": ["erik.data"],
    "admins": ["it.admin"],
}


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_design_example_directory_loads(tmp_path: Path) -> None:
    d = load_directory(write(tmp_path, "dir.yaml", GOOD_DIRECTORY))
    assert d.usernames == ["anna.schmidt", "tom.berg", "maria.mueller", "erik.data", "it.admin"]
    assert d.groups[0].deputies == ["tom.berg"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["groups"][0]["members"].append("ghost"),
            "group 'Vertrieb' members: unknown user 'ghost'",
        ),
        (
            lambda d: d["users"].append({"username": "tom.berg", "name": "Tom 2"}),
            "duplicate username 'tom.berg'",
        ),
        (lambda d: d["analysts"].append("nobody"), "analysts: unknown user 'nobody'"),
        (lambda d: d["users"].append({"username": "Bad Name", "name": "x"}), "username 'Bad Name'"),
        (lambda d: d["users"].append({"username": "o'neil", "name": "x"}), 'username "o\'neil"'),
        (lambda d: d["groups"].append(dict(d["groups"][0])), "duplicate group name 'Vertrieb'"),
        (lambda d: d["groups"][0].update(leader=["x"]), "groups.0.leader: Extra inputs are not permitted"),
    ],
)
def test_bad_directory_is_refused_naming_file_and_entry(tmp_path: Path, mutate, expected: str) -> None:
    data = yaml.safe_load(yaml.safe_dump(GOOD_DIRECTORY))
    mutate(data)
    path = write(tmp_path, "dir.yaml", data)
    with pytest.raises(ConfigError) as err:
        load_directory(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"private_calls": {"mode": "shred"}}, "private_calls.mode"),
        ({"service_level": {"threshold_seconds": -5}}, "service_level.threshold_seconds"),
        ({"timezone": "Europe/Atlantis"}, "unknown time zone 'Europe/Atlantis'"),
        ({"retention": {"journal_days": 0}}, "retention.journal_days"),
        ({"callback": {"window_hours": "soon"}}, "callback.window_hours"),
        ({"private_calls": {"mode": "truncate", "truncate_digits": 3, "extra": 1}}, "private_calls.extra"),
    ],
)
def test_bad_policy_is_refused(tmp_path: Path, policy: dict, expected: str) -> None:
    path = write(tmp_path, "policy.yaml", policy)
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_policy_defaults_and_dbt_vars(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "policy.yaml", {"service_level": {"threshold_seconds": 30}}))
    assert p.private_calls.mode == "truncate" and p.timezone == "Europe/Berlin"
    assert p.dbt_vars()["service_level_threshold_seconds"] == 30


def test_missing_and_unparseable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("users: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_directory(bad)


def test_settings_defaults_are_absolute_and_env_driven(tmp_path: Path) -> None:
    s = Settings.from_env({}, cwd=tmp_path)
    assert s.home == tmp_path / "var"
    assert s.journal_url == f"sqlite:///{tmp_path / 'var' / 'demo' / 'journal.sqlite'}"
    assert s.is_demo_journal()
    s2 = Settings.from_env(
        {
            "CALLSIGHT_HOME": "h",
            "CALLSIGHT_JOURNAL_URL": "postgresql://x/y",
            "CALLSIGHT_DIRECTORY": "d.yaml",
            "CALLSIGHT_LOOKBACK_DAYS": "7",
        },
        cwd=tmp_path,
    )
    assert s2.home == tmp_path / "h" and s2.directory_path == tmp_path / "d.yaml"
    assert s2.lookback_days == 7 and not s2.is_demo_journal()
    with pytest.raises(ValueError, match="CALLSIGHT_LOOKBACK_DAYS"):
        Settings.from_env({"CALLSIGHT_LOOKBACK_DAYS": "-1"}, cwd=tmp_path)
    assert Settings.from_env({}, cwd=tmp_path).cache_warmup == WARMABLE_DASHBOARDS
    assert Settings.from_env({"CALLSIGHT_CACHE_WARMUP": "Off"}, cwd=tmp_path).cache_warmup == ()
    some = Settings.from_env({"CALLSIGHT_CACHE_WARMUP": " management-summary, agenten,agenten"}, cwd=tmp_path)
    assert some.cache_warmup == ("management-summary", "agenten")
    for bad in ("no", "management-summary,kundn", ","):
        with pytest.raises(
            ValueError, match=f"CALLSIGHT_CACHE_WARMUP must be on, off or dashboards among .*got '{bad}'"
        ):
            Settings.from_env({"CALLSIGHT_CACHE_WARMUP": bad}, cwd=tmp_path)
