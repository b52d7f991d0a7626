"""superset/gc_freeze.py: a Superset process's full garbage collections skip what lives as long as the
process (issue 31). Run in a child interpreter: freezing is for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys

from callsight.site.settings import REPO_ROOT

CHILD = """
import gc, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("gc_freeze", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)

class App:  # what install() uses of a Flask app
    hooks = []
    def after_request(self, f):
        self.hooks.append(f)

import email.parser, xml.dom.minidom  # long-lived objects, as a worker's imports are
tracked_before = len(gc.get_objects(generation=2))
app = App()
m.install(app)
out = {"tracked_before": tracked_before, "tracked_after": len(gc.get_objects(generation=2)),
       "frozen_at_start": gc.get_freeze_count(), "hooks": len(app.hooks)}
import decimal, json.decoder  # imported lazily by the first requests
for i in range(m.FREEZE_AFTER - 1):
    assert app.hooks[0]("response") == "response"
out["frozen_before_last"] = gc.get_freeze_count()
app.hooks[0]("response")
out["frozen_after_last"] = gc.get_freeze_count()
for i in range(10):
    app.hooks[0]("response")
out["frozen_later"] = gc.get_freeze_count()
print(json.dumps(out))
"""


def test_a_superset_process_freezes_at_start_and_once_more_after_its_first_requests() -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO_ROOT / "superset" / "gc_freeze.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["hooks"] == 1
    assert out["frozen_at_start"] > 1000, "what the process holds at start is frozen"
    assert out["tracked_after"] < out["tracked_before"] / 10, "a full collection no longer walks it"
    assert out["frozen_before_last"] == out["frozen_at_start"], "nothing more until the FREEZE_AFTER-th request"
    assert out["frozen_after_last"] > out["frozen_before_last"], "then what the first requests imported"
    assert out["frozen_later"] == out["frozen_after_last"], "once only: later garbage stays collectable"


def test_superset_config_installs_it_last() -> None:
    """After the other hooks, so that what they made is frozen too."""
    text = (REPO_ROOT / "superset" / "superset_config.py").read_text(encoding="utf-8")
    body = []
    for line in text[text.index("def FLASK_APP_MUTATOR") :].splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break  # the function's end
        body.append(line.strip())
    assert [line for line in body if line][-1].startswith("_gc_freeze.install(app)"), body
