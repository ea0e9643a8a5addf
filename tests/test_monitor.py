"""The monitor without hosts: thresholds, incidents, recover, alerts, stats, files, metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import CheckResult
from adapto_ops.monitor.alerts import (
    AlertFailed,
    Notice,
    Outbox,
    TelegramNotifier,
    WebhookNotifier,
    deploy_note,
)
from adapto_ops.monitor.loop import Monitor, MonitorConfig
from adapto_ops.monitor.metrics import Metrics, parse_listen
from adapto_ops.monitor.state import Tracker, recover_target
from adapto_ops.monitor.stats import Stats, percentile
from adapto_ops.monitor.store import ResultsFile, read_rounds
from tests.fake_telegram import FakeTelegram

TOKEN = "123456:AAH-secret-token-value"
CHAT = "4242"


def result(name: str = "api", status: str = "pass", host: str = "web1", ms: float = 10.0,
           **kw: object) -> CheckResult:
    component, _, measurement = name.partition(":")
    fields = {"observed_value": ms, "observed_unit": "ms", "duration_ms": ms}
    if status == "fail":
        fields |= {"kind": "network", "output": "ECONNREFUSED",
                   "next_command": "adapto recover backend -e prod"}
    fields |= kw  # type: ignore[arg-type]
    return CheckResult(host, component, measurement or "responseTime", name, status,  # type: ignore[arg-type]
                       **fields)  # type: ignore[arg-type]


def backend(status: str, host: str = "web1") -> list[CheckResult]:
    """A round in which the backend is up or down: the API and both instances pass or fail."""
    return [result("api", status, host), result("page", "pass", host),
            result("instance-3001", status, host), result("instance-3002", status, host)]


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.down = False

    def send(self, notice: Notice) -> None:
        if self.down:
            raise AlertFailed("recorder: down")
        self.notices.append(notice)


def monitor(rounds: list[list[CheckResult]], **config: object) -> tuple[Monitor, Recorder,
                                                                         list[tuple[str, str]]]:
    feed = iter(rounds)
    recorder, recovered = Recorder(), []

    def recover(host: str, what: str) -> bool:
        recovered.append((host, what))
        return True

    m = Monitor(MonitorConfig(env="prod", **config), lambda: next(feed),  # type: ignore[arg-type]
                recover=recover, outbox=Outbox(recorder))
    return m, recorder, recovered


# --- thresholds and incidents ---------------------------------------------------------


def test_alert_only_after_failure_threshold_consecutive_failures() -> None:
    tracker = Tracker(3, 2)
    assert tracker.observe([result(status="fail")], 1) == []
    assert tracker.observe([result(status="fail")], 2) == []
    assert tracker.observe([result()], 3) == []  # a pass breaks the streak
    assert tracker.observe([result(status="fail")], 4) == []
    assert tracker.observe([result(status="fail")], 5) == []
    [alert] = tracker.observe([result(status="fail")], 6)
    assert alert.kind == "alert"
    assert alert.incident.first_failure_at == 4


def test_one_alert_per_incident_and_one_resolved_after_success_threshold() -> None:
    rounds = [backend("fail")] * 6 + [backend("pass")] + [backend("fail")] + \
             [backend("pass")] * 3
    m, recorder, _ = monitor(rounds)
    for _ in rounds:
        m.round()
    kinds = [n.kind for n in recorder.notices]
    assert kinds == ["alert", "resolved"], [n.text for n in recorder.notices]
    alert, resolved = recorder.notices
    assert "3 check(s) failing" in alert.text
    assert "ECONNREFUSED" in alert.text and "adapto recover backend -e prod" in alert.text
    assert "RESOLVED prod: web1" in resolved.text


def test_checks_resolving_in_different_rounds_send_one_resolved_message() -> None:
    half = [result("api"), result("page"), result("instance-3001"),
            result("instance-3002", "fail")]
    rounds = [backend("fail")] * 3 + [half] * 2 + [backend("pass")] * 2
    m, recorder, _ = monitor(rounds)
    for _ in rounds:
        m.round()
    assert [n.kind for n in recorder.notices] == ["alert", "resolved"]


def test_the_alert_lists_checks_failing_below_the_threshold_too() -> None:
    first = [result("api"), result("instance-3001", "fail"), result("instance-3002")]
    rounds = [first, first, backend("fail")]
    m, recorder, _ = monitor(rounds)
    for _ in rounds:
        m.round()
    [alert] = recorder.notices
    assert "3 check(s) failing" in alert.text and "instance-3002" in alert.text


def test_group_per_check_alerts_each_check() -> None:
    rounds = [backend("fail")] * 3
    m, recorder, _ = monitor(rounds, group="check")
    for _ in rounds:
        m.round()
    assert len(recorder.notices) == 3


def test_warnings_do_not_page() -> None:
    rounds = [[result(status="warn", kind="slow")]] * 5
    m, recorder, _ = monitor(rounds, failure_threshold=1)
    for _ in rounds:
        assert m.round().ok
    assert recorder.notices == []


def test_auto_recover_runs_once_per_incident_after_the_alert() -> None:
    rounds = [backend("fail")] * 8 + [backend("pass")] * 2 + [backend("fail")] * 3
    m, recorder, recovered = monitor(rounds, auto_recover=True)
    events = [e for _ in rounds for e in m.round().events]
    assert recovered == [("web1", "backend"), ("web1", "backend")]  # once in each incident
    assert [e["event"] for e in events] == ["alert", "recover", "resolved", "alert", "recover"]
    assert "auto-recover: adapto recover backend -e prod" in recorder.notices[0].text
    assert "auto-recover: backend ended healthy" in recorder.notices[1].text


def test_no_recover_without_the_flag_or_for_checks_it_cannot_heal() -> None:
    m, _, recovered = monitor([backend("fail")] * 4)
    for _ in range(4):
        m.round()
    cert = [result("certificate:daysLeft", "fail", kind="tls", next_command=None)] * 1
    m2, recorder, recovered2 = monitor([cert] * 3, auto_recover=True)
    for _ in range(3):
        m2.round()
    assert recovered == [] and recovered2 == [] and len(recorder.notices) == 1


def test_recover_target_follows_next_command_then_kind() -> None:
    assert recover_target(result(status="fail")) == "backend"
    assert recover_target(result("nginx:config", "fail", kind="config",
                                 next_command="adapto recover nginx -e p")) == "nginx"
    assert recover_target(result("nginx:config", "fail", kind="config", next_command=None)) \
        == "nginx"
    assert recover_target(result("disk:free", "fail", kind="disk", next_command=None)) is None


def test_a_check_that_raises_is_a_failed_round_not_a_crash() -> None:
    def broken() -> list[CheckResult]:
        raise AdaptoError("web1: unreachable (connection refused)")

    m = Monitor(MonitorConfig(env="prod", failure_threshold=1), broken)
    outcome = m.round()
    assert not outcome.ok and "unreachable" in outcome.results[0].output
    assert len(m.tracker.open) == 1


# --- deploy correlation ---------------------------------------------------------------


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def test_failure_soon_after_a_deploy_names_the_release_and_the_rollback() -> None:
    now = time.time()
    deploy = {"release": "20261130104900", "time": _iso(now - 180), "action": "deploy all",
              "result": "ok"}
    note = deploy_note(deploy, now, 600, "prod")
    assert note is not None
    assert "release 20261130104900" in note and "adapto rollback -e prod" in note
    assert "3 min after deploy all" in note
    assert deploy_note(deploy, now + 3600, 600, "prod") is None  # long after: not named
    assert deploy_note(None, now, 600, "prod") is None
    assert deploy_note({"release": "x", "time": "garbage"}, now, 600, "prod") is None


def test_the_alert_carries_the_deploy_note() -> None:
    feed = iter([backend("fail")] * 3)
    recorder = Recorder()
    deployed = {"release": "20261130104900", "time": _iso(time.time() - 60),
                "action": "deploy backend"}
    m = Monitor(MonitorConfig(env="prod"), lambda: next(feed), outbox=Outbox(recorder),
                last_deploy=lambda host: deployed if host == "web1" else None)
    for _ in range(3):
        m.round()
    [alert] = recorder.notices
    assert "deploy backend of release 20261130104900" in alert.text
    assert "adapto rollback -e prod" in alert.text


# --- delivery ---------------------------------------------------------------------------


def test_an_undelivered_alert_is_sent_on_a_later_round() -> None:
    rounds = [backend("fail")] * 5
    m, recorder, _ = monitor(rounds)
    recorder.down = True
    events = [e for _ in range(3) for e in m.round().events]
    assert any(e["event"] == "alert-not-delivered" for e in events)
    recorder.down = False
    m.round()
    assert [n.kind for n in recorder.notices] == ["alert"]


@pytest.fixture
def telegram() -> FakeTelegram:
    fake = FakeTelegram(TOKEN, CHAT).start()
    yield fake
    fake.stop()


def notice(text: str = "ALERT prod: web1 down") -> Notice:
    return Notice("alert", "prod", "web1", text)


def test_telegram_send_message_reaches_the_bot_api(telegram: FakeTelegram) -> None:
    TelegramNotifier(TOKEN, CHAT, api_base=telegram.api_base).send(notice())
    assert telegram.texts() == ["ALERT prod: web1 down"]
    assert telegram.messages[0].chat_id == CHAT


def test_telegram_429_waits_retry_after_then_sends(telegram: FakeTelegram) -> None:
    telegram.scripted = [(429, 2)]
    waited: list[float] = []
    TelegramNotifier(TOKEN, CHAT, api_base=telegram.api_base, sleep=waited.append).send(notice())
    assert waited == [2.0] and telegram.texts() == ["ALERT prod: web1 down"]


def test_telegram_errors_say_why_and_never_show_the_token(telegram: FakeTelegram) -> None:
    wrong = TelegramNotifier("999:wrong-token", CHAT, api_base=telegram.api_base)
    with pytest.raises(AlertFailed) as bad_token:
        wrong.send(notice())
    with pytest.raises(AlertFailed) as bad_chat:
        TelegramNotifier(TOKEN, "1", api_base=telegram.api_base).send(notice())
    telegram.scripted = [(429, 1)] * 3
    with pytest.raises(AlertFailed) as flooded:
        TelegramNotifier(TOKEN, CHAT, api_base=telegram.api_base, sleep=lambda s: None) \
            .send(notice())
    assert "HTTP 401: Unauthorized" in bad_token.value.message
    assert "chat not found" in bad_chat.value.message
    assert "rate-limited" in flooded.value.message or "Too Many" in flooded.value.message
    for error in (bad_token, bad_chat, flooded):
        assert TOKEN not in error.value.message and "wrong-token" not in error.value.message


def test_telegram_unreachable_masks_the_token() -> None:
    notifier = TelegramNotifier(TOKEN, CHAT, api_base="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(AlertFailed) as error:
        notifier.send(notice())
    assert "127.0.0.1:9" in error.value.message and TOKEN not in error.value.message


def test_webhook_posts_json_and_hides_its_url() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204 if self.path == "/hook/s3cr3t" else 403)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        WebhookNotifier(f"{base}/hook/s3cr3t").send(notice())
        with pytest.raises(AlertFailed) as error:
            WebhookNotifier(f"{base}/hook/wrong").send(notice())
    finally:
        server.shutdown()
    assert got[0]["event"] == "alert" and got[0]["host"] == "web1"
    assert "HTTP 403" in error.value.message and "/hook/" not in error.value.message


# --- stats, results file, metrics ------------------------------------------------------


def test_percentiles_and_uptime() -> None:
    assert percentile([], 50) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95
    assert percentile([7.0], 95) == 7.0
    stats = Stats()
    for ms in (10, 20, 30):
        stats.add([result(ms=ms)])
    stats.add([result(status="fail", ms=1)])
    [row] = stats.rows()
    assert row.uptime == 0.75 and row.failures == 1
    assert row.p(50) == 20 and row.p(95) == 30  # the refused 1 ms is not a latency


def test_results_file_has_one_line_per_round_with_every_check(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "prod.jsonl"
    store = ResultsFile(path)
    feed = iter([backend("pass"), backend("fail")])
    m = Monitor(MonitorConfig(env="prod", failure_threshold=1), lambda: next(feed), store=store)
    m.round()
    m.round()
    store.close()
    rounds = read_rounds(path)
    assert [r["round"] for r in rounds] == [1, 2]
    assert [r["status"] for r in rounds] == ["pass", "fail"]
    assert len(rounds[1]["checks"]) == 4 and rounds[1]["events"][0]["event"] == "alert"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_full_results_file_rolls_over_to_dot_1(tmp_path: Path) -> None:
    path = tmp_path / "prod.jsonl"
    store = ResultsFile(path, max_bytes=2000)
    for number in range(1, 11):
        store.append({"round": number, "pad": "x" * 300})
    store.close()
    old, new = read_rounds(path.with_name("prod.jsonl.1")), read_rounds(path)
    assert [r["round"] for r in old + new] == list(range(old[0]["round"], 11))
    assert new and path.stat().st_mode & 0o777 == 0o600


def test_metrics_text_and_server() -> None:
    metrics = Metrics("prod")
    feed = iter([backend("pass"), backend("fail")])
    m = Monitor(MonitorConfig(env="prod", failure_threshold=1), lambda: next(feed),
                metrics=metrics)
    m.round()
    m.round()
    text = metrics.text()
    labels = 'check="api:responseTime",env="prod",host="web1"'
    assert f"adapto_check_up{{{labels}}} 0.0" in text
    assert f"adapto_check_failures_total{{{labels}}} 1.0" in text
    assert f"adapto_uptime_ratio{{{labels}}} 0.5" in text
    assert 'adapto_check_latency_seconds{check="page:responseTime"' in text
    assert 'adapto_incidents_open{env="prod"} 1.0' in text
    port = metrics.serve("127.0.0.1", 0)
    try:
        served = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text
    finally:
        metrics.close()
    assert "adapto_check_up" in served


def test_metrics_listen_address_is_checked() -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    for bad in ("9108", "localhost:9108", "127.0.0.1:x", "127.0.0.1:70000"):
        with pytest.raises(AdaptoError):
            parse_listen(bad)


def test_the_table_and_the_json_line_show_uptime_and_percentiles() -> None:
    import io

    from rich.console import Console

    from adapto_ops.monitor import view

    feed = iter([backend("pass"), backend("pass"), backend("fail")])
    m = Monitor(MonitorConfig(env="prod", failure_threshold=1), lambda: next(feed))
    outcomes = [m.round() for _ in range(3)]
    out = io.StringIO()
    Console(file=out, width=200).print(view.table("prod", m.stats, outcomes[-1], 5, 1,
                                                  view.event_lines(outcomes[-1])))
    text = out.getvalue()
    assert "round 3, every 5s, 1 incident(s) open" in text
    assert "66.67 %" in text and "100.00 %" in text and "ECONNREFUSED" in text
    assert "alert: ALERT prod: web1: 3 check(s) failing" in text
    line = json.loads(view.json_line(outcomes[-1], m.stats))
    api = next(c for c in line["checks"] if c["check"] == "api:responseTime")
    assert line["status"] == "fail" and api["uptime"] == 0.66667 and api["p50_ms"] == 10.0
