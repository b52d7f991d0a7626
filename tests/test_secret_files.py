"""Secrets from files (issue 27): NAME_FILE instead of NAME, in callsight (site/secret_files.py) and in
Superset's own processes (superset/secret_files.py, run here as the config loads it, in a process of its
own). Refusals name variables and paths and never hold the secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callsight.bi.runtime import SupersetEnv
from callsight.site.secret_files import SECRET_SETTINGS, SecretFileError, resolve_secret_files
from callsight.site.settings import REPO_ROOT, Settings

SUPERSET_RESOLVER = REPO_ROOT / "superset" / "secret_files.py"
SECRET = "s3cret-from-a-credential-file"  # what every readable secret file below holds (plus a newline)

# Run the Superset side as superset_config.py loads it: by path, in a process of its own, on its environ.
SUPERSET_SIDE = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("callsight_secret_files", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
try:
    warnings = module.export_secret_files(os.environ)
except module.SecretFileError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    names = module.SUPERSET_SECRETS
    print(json.dumps({"env": {k: v for k, v in os.environ.items() if k.startswith(names)}, "warnings": warnings}))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Secret files as an admin or systemd's LoadCredential= leaves them, and some that cannot serve."""
    root = tmp_path_factory.mktemp("credentials")
    made = {}
    for name, content, mode in (
        ("good", f"{SECRET}\n".encode(), 0o400),
        ("crlf", f"{SECRET}\r\n".encode(), 0o600),
        ("group", f"{SECRET}\n".encode(), 0o640),
        ("world", f"{SECRET}\n".encode(), 0o644),
        ("empty", b"", 0o600),
        ("newline", b"\n", 0o600),
        ("binary", b"\xff\xfe" + SECRET.encode(), 0o600),
        ("url", b"postgresql+psycopg2://callsight:pw-in-url@127.0.0.1/superset\n", 0o600),
    ):
        path = root / name
        path.write_bytes(content)
        path.chmod(mode)
        made[name] = path
    made["missing"] = root / "not-there"
    made["directory"] = root
    return made


def superset_side(env: dict[str, str]) -> dict:
    base = {"PATH": os.environ.get("PATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", SUPERSET_SIDE, str(SUPERSET_RESOLVER)],
        env=base | env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert SECRET not in out.stderr
    return json.loads(out.stdout)


# ---- what reaches the settings and Superset ---------------------------------------------------------------
def test_secrets_from_files_reach_the_settings_under_their_plain_names(files: dict[str, Path], tmp_path: Path) -> None:
    env = {
        "CALLSIGHT_HOME": str(tmp_path),
        "CALLSIGHT_ERASURE_KEY_FILE": str(files["good"]),
        "SMTP_PASSWORD_FILE": str(files["crlf"]),
        "CALLSIGHT_JOURNAL_URL_FILE": str(files["url"]),
        "SUPERSET_SECRET_KEY": "given-directly",
    }
    settings = Settings.from_env(env)
    assert settings.secret("CALLSIGHT_ERASURE_KEY") == SECRET, "the trailing newline is stripped"
    assert settings.secret("SMTP_PASSWORD") == SECRET
    assert settings.journal_url == "postgresql+psycopg2://callsight:pw-in-url@127.0.0.1/superset"
    assert settings.export()["CALLSIGHT_JOURNAL_URL"] == settings.journal_url
    assert settings.secret("SUPERSET_SECRET_KEY") == "given-directly"
    assert not [k for k in settings.env if k.endswith("_FILE")]
    assert env["CALLSIGHT_ERASURE_KEY_FILE"] == str(files["good"]), "the caller's mapping is left alone"


def test_superset_children_get_resolved_secrets_and_superset_resolves_files_itself(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process that did not export them (say the Dagster daemon run by systemd) starts Superset.
    monkeypatch.setenv("SMTP_PASSWORD_FILE", str(files["good"]))
    monkeypatch.setenv("SUPERSET_DATABASE_URI_FILE", str(files["url"]))
    monkeypatch.setenv("SUPERSET_SECRET_KEY_FILE", str(files["crlf"]))
    settings = Settings.from_env({"CALLSIGHT_HOME": str(tmp_path)} | dict(os.environ))
    child = SupersetEnv(settings, settings.secret("SUPERSET_SECRET_KEY")).environ()
    assert (child["SMTP_PASSWORD"], child["SUPERSET_SECRET_KEY"]) == (SECRET, SECRET)
    assert child["SUPERSET_DATABASE_URI"].endswith("@127.0.0.1/superset")
    assert not [k for k in child if k.endswith("_FILE") and k[: -len("_FILE")] in SECRET_SETTINGS]
    # superset_config.py's resolver accepts that environment as it is ...
    names = ("SUPERSET_SECRET_KEY", "SUPERSET_DATABASE_URI", "SMTP_PASSWORD")
    given = {k: child[k] for k in names}
    assert superset_side(given) == {"env": given, "warnings": []}
    # ... and reads the files itself when Superset is started with them (a systemd unit of its own).
    files_only = {f"{k}_FILE": os.environ[f"{k}_FILE"] for k in names}
    assert superset_side(files_only) == {"env": given, "warnings": []}


def test_the_callsight_command_exports_file_secrets_to_itself_and_warns_about_a_group_readable_file(
    files: dict[str, Path], tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT / "orchestration"),
        "CALLSIGHT_HOME": str(tmp_path / "home"),
    }
    command = [sys.executable, "-m", "callsight.cli.main", "erase", "--phone", "+49 89 1234567"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "CALLSIGHT_ERASURE_KEY is not set" in refused.stdout
    env["CALLSIGHT_ERASURE_KEY_FILE"] = str(files["group"])
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "erasure request" in done.stdout and "recorded" in done.stdout
    assert f"warning: CALLSIGHT_ERASURE_KEY_FILE: {files['group']} is readable by its group" in done.stdout
    assert SECRET not in done.stdout + done.stderr


# ---- refusals ---------------------------------------------------------------------------------------------
REFUSALS = [
    # (case, file, plain value also given, what the message says besides the variable)
    ("both forms", "good", "also-given-directly", "SMTP_PASSWORD and SMTP_PASSWORD_FILE are both set"),
    ("missing file", "missing", None, "cannot read {path} (No such file or directory)"),
    ("a directory", "directory", None, "cannot read {path} (Is a directory)"),
    ("empty file", "empty", None, "{path} is empty"),
    ("only a newline", "newline", None, "{path} is empty"),
    ("readable by everyone", "world", None, "{path} is readable by every user of this machine (mode 0644)"),
    ("not text", "binary", None, "{path} is not UTF-8 text"),
]


@pytest.mark.parametrize(("case", "file", "plain", "says"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_secret_given_the_wrong_way_is_refused_alike_on_both_sides_without_the_secret(
    files: dict[str, Path], case: str, file: str, plain: str | None, says: str
) -> None:
    env = {"SMTP_PASSWORD_FILE": str(files[file])} | ({"SMTP_PASSWORD": plain} if plain else {})
    expected = says.format(path=files[file])
    with pytest.raises(SecretFileError) as refused:
        resolve_secret_files(env)
    message = str(refused.value)
    assert expected in message and "SMTP_PASSWORD" in message, message
    assert SECRET not in message and "also-given-directly" not in message
    assert superset_side(env) == {"error": message}, "superset/secret_files.py says the same"


def test_every_problem_is_named_at_once_and_the_cli_refuses_before_writing(
    files: dict[str, Path], tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT / "orchestration"),
        "CALLSIGHT_HOME": str(tmp_path / "home"),
        "SUPERSET_SECRET_KEY": SECRET,
        "SUPERSET_SECRET_KEY_FILE": str(files["good"]),
        "CALLSIGHT_ERASURE_KEY_FILE": str(files["missing"]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "callsight.cli.main", "run"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "SUPERSET_SECRET_KEY and SUPERSET_SECRET_KEY_FILE are both set" in out.stdout
    assert f"CALLSIGHT_ERASURE_KEY_FILE: cannot read {files['missing']}" in out.stdout
    assert SECRET not in out.stdout + out.stderr
    assert not (tmp_path / "home").exists(), "nothing was written"


def test_a_group_readable_file_is_served_with_a_warning_on_both_sides(files: dict[str, Path]) -> None:
    env = {"SUPERSET_SECRET_KEY_FILE": str(files["group"])}
    resolved = resolve_secret_files(env)
    assert resolved.env == {"SUPERSET_SECRET_KEY": SECRET}
    (warning,) = resolved.warnings
    assert "is readable by its group (mode 0640)" in warning and SECRET not in warning
    assert superset_side(env) == {"env": {"SUPERSET_SECRET_KEY": SECRET}, "warnings": [warning]}
    # systemd's credentials show the ACL that grants the service user as group bits: no warning there.
    env["CREDENTIALS_DIRECTORY"] = str(files["group"].parent)
    assert resolve_secret_files(env).warnings == ()
    assert superset_side(env) == {"env": {"SUPERSET_SECRET_KEY": SECRET}, "warnings": []}
