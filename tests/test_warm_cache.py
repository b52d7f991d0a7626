"""The night's cache warm-up, its pure parts: whom it runs as, and when the stored capture is used. The
warm-up against real Superset processes: tests/test_shared_cache.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from callsight.bi.capture import CapturedRequest
from callsight.bi.roles import ROLE_ADMIN, ROLE_ANALYST, ROLE_VIEWER
from callsight.bi.warm_cache import representatives, run_chunks, stored_requests


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


class Calls:
    """A stand-in for the warm-up endpoint that notes how many calls ran at once."""

    def __init__(self, fail_on: str = "") -> None:
        self.running, self.most, self.fail_on, self.lock = 0, 0, fail_on, threading.Lock()

    def __call__(self, chunk: tuple[str, list[dict]]) -> dict[str, int]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.2)
            if chunk[0] == self.fail_on:
                raise RuntimeError("Superset answered 500")
            return {"computed": len(chunk[1]), "cached": 0, "failed": 0}
        finally:
            with self.lock:
                self.running -= 1


CHUNKS = [(f"user{i}", [{}, {}]) for i in range(6)]


def test_the_warm_up_calls_run_side_by_side_only_while_nobody_uses_superset() -> None:
    calls = Calls()
    answers, aside = run_chunks(CHUNKS, calls, busy=lambda: False, parallel=2, pause=0.05)
    assert sum(a["computed"] for a in answers) == 12 and calls.most == 2 and aside == 0
    calls = Calls()
    answers, aside = run_chunks(CHUNKS, calls, busy=lambda: True, parallel=2, pause=0.05)
    assert sum(a["computed"] for a in answers) == 12, "every chunk still warmed"
    assert calls.most == 1 and aside > 0, "one call at a time while people use Superset"


def test_a_failed_call_stops_the_warm_up_even_while_the_others_stand_aside() -> None:
    with pytest.raises(RuntimeError, match="500"):
        run_chunks(CHUNKS, Calls(fail_on="user2"), busy=lambda: True, parallel=2, pause=0.05)
