"""`adapto monitor`: the health checks on a schedule, with alerts and auto-recover.

Wires the monitor's loop to the real pieces: the health checks of every host,
`adapto recover`, the deploy history, the alert channel named in the
inventory (secrets resolved like every other secret), the results file and,
on request, a Prometheus endpoint.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.inventory.secrets import resolve_secrets
from adapto_ops.selection import Selection, select


def results_path(selection: Selection) -> Path:
    """The JSONL file rounds are appended to (default .adapto/monitor/<env>.jsonl)."""
    configured = selection.env.monitor.results_file
    return selection.loaded.resolve(configured or f".adapto/monitor/{selection.env_name}.jsonl")


def alert_secret_names(selection: Selection, channel: str | None) -> list[str]:
    """The secrets the chosen channel needs (the installed monitor gets only these)."""
    alert = selection.env.monitor.alert
    if channel == "telegram":
        return [alert.telegram_token_secret, alert.telegram_chat_id_secret]
    if channel == "webhook" and alert.webhook_url_secret:
        return [alert.webhook_url_secret]
    return []


def notifier(selection: Selection, channel: str | None) -> Any:
    """The alert channel, its secrets resolved; a missing secret is a one-line error (exit 2)."""
    from adapto_ops.monitor.alerts import TelegramNotifier, WebhookNotifier

    if channel is None:
        return None
    alert = selection.env.monitor.alert
    secrets = resolve_secrets(alert_secret_names(selection, channel), selection.secrets_file)
    secrets.require_all(selection.env_name)
    if channel == "telegram":
        return TelegramNotifier(secrets.values[alert.telegram_token_secret],
                                secrets.values[alert.telegram_chat_id_secret],
                                api_base=alert.telegram_api_base, timeout_s=alert.timeout_s)
    url = secrets.values.get(alert.webhook_url_secret or "") or alert.webhook_url
    if not url:
        raise AdaptoError(f"{selection.loaded.path}: environments.{selection.env_name}.monitor"
                          ".alert: --alert webhook needs webhook_url_secret or webhook_url")
    return WebhookNotifier(url, timeout_s=alert.timeout_s)


def recoverer(selection: Selection, inventory: str | None) -> Any:
    """(host, what) -> ended healthy, through `adapto recover` on that host alone."""
    from adapto_ops.events import ListReporter
    from adapto_ops.recover import recover

    def run_recover(host: str, what: str) -> bool:
        one = select(inventory, selection.env_name, [host])
        return recover(one, what, ListReporter(), dry_run=False).healthy

    return run_recover


def run_monitor(*, inventory: str | None, env_name: str, hosts: list[str] | None,
                interval: float | None, auto_recover: bool, alert: str | None, once: bool,
                metrics: str | None, as_json: bool, max_rounds: int | None = None) -> int:
    from adapto_ops.health.run import run_checks
    from adapto_ops.monitor.alerts import Outbox
    from adapto_ops.monitor.history import DeployHistory
    from adapto_ops.monitor.loop import Monitor, MonitorConfig
    from adapto_ops.monitor.metrics import Metrics, parse_listen
    from adapto_ops.monitor.store import ResultsFile

    selection = select(inventory, env_name, hosts)
    cfg = selection.env.monitor
    listen = parse_listen(metrics) if metrics else None
    # One round rarely crosses a threshold: --once alerts only when asked to (--alert).
    channel = alert or (None if once else cfg.alert.channel)
    outbox = Outbox(notifier(selection, channel))
    recover = recoverer(selection, inventory) if auto_recover else None
    interval_s = interval if interval is not None else cfg.interval_s
    last_deploy = DeployHistory(selection)
    store = ResultsFile(results_path(selection))
    exporter = Metrics(env_name) if listen else None
    monitor = Monitor(
        MonitorConfig(env=env_name, failure_threshold=cfg.failure_threshold,
                      success_threshold=cfg.success_threshold, group=cfg.group,
                      deploy_window_s=cfg.deploy_window_s, auto_recover=auto_recover),
        lambda: run_checks(selection), recover=recover, last_deploy=last_deploy, outbox=outbox,
        store=store, metrics=exporter)
    try:
        if exporter and listen:
            port = exporter.serve(*listen)
            print(f"metrics: http://{listen[0]}:{port}/metrics", file=sys.stderr)
        if once:
            return _once(monitor, env_name, interval_s, as_json)
        _loop(monitor, env_name, interval_s, as_json, channel, max_rounds)
        return EXIT_OK
    finally:
        last_deploy.close()
        store.close()
        if exporter:
            exporter.close()


def _once(monitor: Any, env_name: str, interval_s: float, as_json: bool) -> int:
    from adapto_ops.monitor import view
    from adapto_ops.output import console

    outcome = monitor.round()
    if as_json:
        view.log_line(view.json_line(outcome, monitor.stats))
    else:
        console().print(view.table(env_name, monitor.stats, outcome, interval_s,
                                   len(monitor.tracker.open), view.event_lines(outcome)))
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _loop(monitor: Any, env_name: str, interval_s: float, as_json: bool, channel: str | None,
          max_rounds: int | None) -> None:
    from adapto_ops.monitor import view
    from adapto_ops.output import console

    stop = threading.Event()
    # systemd and PM2 stop with SIGTERM: finish the round, close the files, exit 0.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    live_table = not as_json and sys.stdout.isatty()
    recent: list[str] = []
    if not as_json:
        view.log_line(f"monitor {env_name}: every {interval_s:g}s, failure threshold "
                      f"{monitor.config.failure_threshold}, success threshold "
                      f"{monitor.config.success_threshold}, alerts: {channel or 'none'}, "
                      f"auto-recover: {'on' if monitor.config.auto_recover else 'off'}")
    live: Any = None
    if live_table:
        from rich.live import Live

        live = Live(console=console(), auto_refresh=False)
        live.start()

    def on_round(outcome: Any) -> None:
        lines = view.event_lines(outcome)
        if as_json:
            view.log_line(view.json_line(outcome, monitor.stats))
        elif live is not None:
            recent.extend(lines)
            live.update(view.table(env_name, monitor.stats, outcome, interval_s,
                                   len(monitor.tracker.open), recent), refresh=True)
        else:
            for line in lines:
                view.log_line(line)

    try:
        monitor.run(interval_s, stop, on_round, max_rounds)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    if not as_json:
        view.log_line(f"monitor {env_name}: stopped after {monitor.rounds} round(s)")


# --- install / uninstall -----------------------------------------------------------------


def installed_secret_names(selection: Selection, channel: str | None) -> list[str]:
    """What the installed monitor needs: its alert channel's secrets and the probe token."""
    names = alert_secret_names(selection, channel)
    probe_token = getattr(selection.env.health, "probe_token", None)
    return names + ([probe_token] if probe_token and probe_token not in names else [])


def run_monitor_install(*, inventory: str | None, env_name: str, hosts: list[str] | None,
                        alert: str | None, auto_recover: bool, dry_run: bool,
                        as_json: bool) -> int:
    from adapto_ops.deploy.session import Session, parallel
    from adapto_ops.monitor.alerts import scrubber
    from adapto_ops.monitor.install import install_on, plan
    from adapto_ops.procedures.deploy import make_reporter

    selection = select(inventory, env_name, hosts)
    channel = alert or selection.env.monitor.alert.channel
    secrets = resolve_secrets(installed_secret_names(selection, channel), selection.secrets_file)
    secrets.require_all(env_name)
    scrub = scrubber(list(secrets.values.values()))
    plans = {t.host.name: plan(selection, t, channel=channel, auto_recover=auto_recover,
                               secret_values=secrets.values) for t in selection.targets}
    project = selection.loaded.inventory.project
    reporter = make_reporter(as_json)
    try:
        with Session(selection, reporter, dry_run=dry_run) as session:
            outcomes = parallel(session.deployers, lambda d: install_on(
                d, plans[d.name], project=project, env_name=env_name,
                sandbox=selection.env.sandbox is not None, reporter=reporter,
                dry_run=dry_run, scrub=scrub))
            recorded = [c for d in session.deployers for c in getattr(d.t, "recorded", [])]
    finally:
        reporter.close()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    for error in failed:
        print(f"error: {getattr(error, 'message', None) or error}", file=sys.stderr)
    done = [o for o in outcomes if isinstance(o, dict)]
    if dry_run:
        for o in done:
            print(f"# {o['host']}: {o['service']} ({o['manager']})\n{o['service_text']}")
        for c in recorded:
            stdin = f"  (+{c.stdin_bytes} bytes on stdin)" if c.stdin_bytes else ""
            print(f"{c.host}: {c.command}{stdin}")
    else:
        for o in done:
            if as_json:
                print(json.dumps({"kind": "result", "step": "monitor install",
                                  **{k: v for k, v in o.items() if k != "service_text"}}))
            else:
                print(f"{o['host']}: {o['name']} under {o['manager']}, "
                      f"{'running' if o['running'] else 'NOT running'}; "
                      f"results in {o['results']}")
    ok = not failed and all(o["running"] is not False for o in done)
    return EXIT_OK if ok else EXIT_FAILED


def run_monitor_uninstall(*, inventory: str | None, env_name: str, hosts: list[str] | None,
                          as_json: bool) -> int:
    from adapto_ops.deploy.session import Session, parallel
    from adapto_ops.monitor.install import plan, uninstall_on
    from adapto_ops.procedures.deploy import make_reporter

    selection = select(inventory, env_name, hosts)
    plans = {t.host.name: plan(selection, t, channel=None, auto_recover=False,
                               secret_values={}) for t in selection.targets}
    reporter = make_reporter(as_json)
    try:
        with Session(selection, reporter, dry_run=False) as session:
            outcomes = parallel(session.deployers, lambda d: uninstall_on(
                d, plans[d.name], sandbox=selection.env.sandbox is not None, reporter=reporter))
    finally:
        reporter.close()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    for error in failed:
        print(f"error: {getattr(error, 'message', None) or error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
