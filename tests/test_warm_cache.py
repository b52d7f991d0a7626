"""The night's cache warm-up, its pure parts: whom it runs as, and when the stored capture is used. The
warm-up against real Superset processes: tests/test_shared_cache.py."""

from __future__ import annotations

import json
from pathlib import Path

from callsight.bi.capture import CapturedRequest
from callsight.bi.roles import ROLE_ADMIN, ROLE_ANALYST, ROLE_VIEWER
from callsight.bi.warm_cache import representatives, stored_requests


def test_one_viewer_per_role_and_visibility_set() -> None:
    roles = {
        "anna": ROLE_VIEWER,
        "bernd": ROLE_VIEWER,  # same set as anna
        "carla": ROLE_VIEWER,  # a set of her own
        "dora": ROLE_VIEWER,  # not in the warehouse: sees nothing, nothing to warm
        "erik": ROLE_ANALYST,
        "frida": ROLE_ANALYST,  # analysts are not limited by their set: one of them is enough
        "gustav": ROLE_ADMIN,
    }
    sets = {"anna": "s1", "bernd": "s1", "carla": "s2", "erik": "s3", "frida": "s4", "gustav": "s5"}
    # who stands for the most users first: anna for bernd too, erik for the analysts
    assert representatives(roles, sets) == ["anna", "erik", "carla", "gustav"]
    # a viewer alone in a set gets warmed however the names sort
    assert representatives(roles, {**sets, "bernd": "s9"}) == ["erik", "anna", "bernd", "carla", "gustav"]


def test_the_stored_capture_is_used_only_for_the_same_assets(tmp_path: Path) -> None:
    path = tmp_path / "warm-requests.json"
    assert stored_requests(path, "k1") is None, "nothing stored yet"
    sent = CapturedRequest("/api/v1/chart/data?form_data=%7B%22slice_id%22%3A3%7D", {"queries": [{}]}, 3, 200)
    path.write_text(json.dumps({"key": "k1", "requests": [sent.to_json()]}), encoding="utf-8")
    assert stored_requests(path, "k1") == [sent]
    assert stored_requests(path, "k2") is None, "the assets changed: capture again"
    path.write_text("{not json", encoding="utf-8")
    assert stored_requests(path, "k1") is None, "a damaged file is captured anew"


def test_the_first_publish_swaps_without_a_warm_up(tmp_path: Path) -> None:
    """Nothing is served yet, so nobody has a dashboard to open: the night does not wait for Superset (whose
    dashboards do not exist yet either) before its first swap. A later night would warm (here it stops at
    the setting that is off)."""
    import logging

    from callsight.defs.bi.warm_cache import warm_up
    from callsight.site.settings import Settings

    env = {"CALLSIGHT_HOME": str(tmp_path), "SUPERSET_ADMIN_PASSWORD": "not-used-here"}
    settings = Settings.from_env(env)
    log = logging.getLogger("test")
    assert warm_up(log, settings, ("agenten",), candidate=True) == {"skipped": "first publish"}
    settings.served_db.parent.mkdir(parents=True)
    settings.served_db.touch()
    off = Settings.from_env({**env, "CALLSIGHT_CACHE_WARMUP": "off"})
    assert warm_up(log, off, ("agenten",), candidate=True) == {"skipped": "switched off"}
