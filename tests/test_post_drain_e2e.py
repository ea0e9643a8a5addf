"""POST traffic across `deploy backend --force` and `deploy frontend`: 0 failed, 0 processed
twice, 0 lost.

One sandbox on its own loopback slot (127.0.0.192). 16 TLS connections POST
/api/probe/record through nginx, each with a unique id, from 1 s before the
deploy until 1 s after it (benchmarks/deploy_traffic.py's measure_one); the
backend stores a row per request it processed. nginx never resends a POST it
has sent, so a restarting instance that closes a pooled keep-alive connection
under nginx fails the request (502): the backend's drain (aiplatform/drain.py)
lets nginx close them instead. The deploy must fail no POST, no id may be
stored twice, and every 2xx must be stored; nginx must log no upstream reset
or premature close (the race itself, also for the GETs loaded beside, which
nginx resends), and each replaced instance must have logged its drain.
A frontend deploy switches `current` without reloading nginx (a reload
closes idle client keep-alive connections under clients' requests), and
still serves the new files at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deploy_traffic import Target, TrafficRunner, measure_one
from tests.e2e_support import sandbox_marks
from tests.operate_sandbox import SERVER_NAME, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow, *sandbox_marks()]

SLOT = Slot("127.0.0.192", 2392, 8192, 8492, (3292, 3293))


def unlimited_api(env: dict[str, Any]) -> None:
    """All test load comes from one address: nginx's per-address API limit would answer 429."""
    env["nginx"]["rate_limits"] = {"api": {"rate": "10000r/s", "burst": 10000},
                                   "auth": {"rate": "5r/m", "burst": 10}}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("post-drain"), SLOT,
                          adjust=unlimited_api) as sandbox:
        yield sandbox


def target(box: OpBox) -> Target:
    return Target.from_sandbox(box.base / ".adapto" / "secrets.env", box.sdir, SLOT.address,
                               SLOT.https_port, SERVER_NAME, box.base / "frontend" / "dist")


def nginx_workers(box: OpBox) -> set[int]:
    """The worker processes of the sandbox's nginx master (a reload replaces them)."""
    master = box.nginx_pid()
    assert master is not None
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def drains_logged(log_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted(log_dir.glob("*-out.log")):
        for line in path.read_text(errors="replace").splitlines():
            _, brace, rest = line.partition("{")
            if brace and '"event": "drained"' in line:
                events.append(json.loads(brace + rest))
    return events


def test_post_load_across_deploy_backend_fails_nothing_and_nothing_twice(box: OpBox) -> None:
    before = len(drains_logged(box.log_dir))
    # GETs beside the POSTs: nginx resends a GET that meets the race, so it does not
    # fail, but logs it; cheaper than POSTs, they make a race more likely to show.
    gets = TrafficRunner(target(box), "GET", "get", connections=16, rate=300,
                         max_seconds=120, max_requests=40000).start()
    try:
        row = measure_one(box.cli, target(box), "deploy backend", "POST",
                          args=("deploy", "backend", "--force", "--yes"))
    finally:
        get_load = gets.stop()
    assert get_load.total >= 200 and get_load.failed == 0, get_load.by_kind
    assert row["exit"] == 0, row
    assert row["requests"] >= 200, row  # the load really ran across the restart
    assert (row["failed"], row["duplicates"], row["missing"]) == (0, 0, 0), row
    assert row["stored"] >= row["requests"], row
    causes = row["nginx_errors"]
    assert not causes.get("upstream prematurely closed") and not causes.get(
        "reset by upstream"), row["nginx_error_samples"]
    drains = drains_logged(box.log_dir)[before:]
    assert len(drains) == len(SLOT.ports), drains
    assert all(d["left"] == 0 for d in drains), drains
    health = box.get()
    assert health.status_code == 200, health.text  # still serving after the deploy


def test_post_load_across_deploy_frontend_fails_nothing_and_needs_no_reload(box: OpBox) -> None:
    workers = nginx_workers(box)
    row = measure_one(box.cli, target(box), "deploy frontend", "POST",
                      args=("deploy", "frontend", "--skip-build", "--yes"))
    assert row["exit"] == 0, row
    assert row["requests"] >= 100, row
    assert (row["failed"], row["duplicates"], row["missing"]) == (0, 0, 0), row
    # The new dist is served at once, by the same nginx workers: no reload happened.
    marker = (box.base / "frontend" / "dist" / "deploy-traffic.txt").read_text()
    served = box.get("/deploy-traffic.txt")
    assert (served.status_code, served.text) == (200, marker)
    assert nginx_workers(box) == workers
