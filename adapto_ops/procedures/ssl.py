"""`adapto ssl status|issue|renew|install|self-signed`: the site's certificate.

Works on the environment's web hosts, one after another (certbot and nginx
reloads are quick; one host's failure stops before the next is touched).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.events import Event, JsonReporter, Reporter
from adapto_ops.selection import Selection, select

ACTIONS = ("status", "issue", "renew", "install", "self-signed")


def _web_targets(selection: Selection) -> list[Any]:
    targets = [t for t in selection.targets if "web" in t.host.roles]
    if not targets:
        raise AdaptoError(f"{selection.loaded.path}: environment {selection.env_name!r} has no "
                          "host with role web (nginx runs on those)")
    return targets


def _transport(selection: Selection, target: Any, dry_run: bool) -> Any:
    from adapto_ops.deploy.session import open_transport
    from adapto_ops.remote import RecordingTransport

    inner = open_transport(selection, target)
    return RecordingTransport(inner) if dry_run else inner


def run_status(*, inventory: str | None, env_name: str, hosts: list[str] | None,
               as_json: bool) -> int:
    """Days left per server name, live and on file; exit 1 on any fail (expired, missing,
    not covering a name, untrusted), 0 otherwise (warnings under health's warn days)."""
    from adapto_ops.certs.status import host_status
    from adapto_ops.render.configs import probe_token_value

    selection = select(inventory, env_name, hosts)
    targets = _web_targets(selection)
    secret_values = selection.secrets()
    rows = []
    for target in targets:
        t = _transport(selection, target, False)
        try:
            rows += host_status(t, target, probe_token_value(target, secret_values), env_name,
                                len(selection.targets) > 1)
        finally:
            t.close()
    worst = "fail" if any(r.status == "fail" for r in rows) else \
        "warn" if any(r.status == "warn" for r in rows) else "pass"
    if as_json:
        print(json.dumps({"env": env_name, "status": worst,
                          "warn_days": selection.env.health.certificate_warn_days,
                          "domains": [r.as_dict() for r in rows]}), flush=True)
    else:
        _print_status(rows)
    for r in rows:
        if r.status == "fail":
            print(f"error: {r.host}: {r.domain}: served: {r.live}; file {r.path}: {r.file}",
                  file=sys.stderr)
    return EXIT_FAILED if worst == "fail" else EXIT_OK


def _print_status(rows: list[Any]) -> None:
    from rich.table import Table

    from adapto_ops.output import console

    table = Table("host", "domain", "status", "served: days", "served", "file: days", "file")
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}
    for r in rows:
        days = [f"{d:.1f}" if d is not None else "-" for d in (r.live_days, r.file_days)]
        table.add_row(r.host, r.domain, f"[{colour[r.status]}]{r.status}[/]", days[0], r.live,
                      days[1], r.file)
    console().print(table)


def run_change(*, action: str, inventory: str | None, env_name: str,
               hosts: list[str] | None, dry_run: bool, yes: bool, as_json: bool,
               staging: bool = False, email: str | None = None, force: bool = False,
               cert: Path | None = None, key: Path | None = None, days: int = 30) -> int:
    """issue | renew | install | self-signed on every web host; 0 done, 1 failed (raised)."""
    from adapto_ops.certs import run as ops
    from adapto_ops.procedures.deploy import confirm, make_reporter
    from adapto_ops.render.configs import probe_token_value

    selection = select(inventory, env_name, hosts)
    targets = _web_targets(selection)
    where = str(selection.loaded.path)
    pair = _local_pair(action, selection, targets[0], where, cert, key, days, force)
    if action in ("issue", "renew"):
        ops.require_mode(targets[0], ("letsencrypt",), action, where)
    if action == "issue" and len(targets) > 1:
        # The ACME server fetches the challenge from whichever host the name resolves to,
        # and each host's certbot would keep its own lineage: not automated (yet).
        names = ", ".join(t.host.name for t in targets)
        raise AdaptoError(f"{where}: {len(targets)} web hosts ({names}): an http-01 challenge "
                          "may reach any of them; issue on the one the name resolves to with "
                          "--host NAME")
    # The site config carries the probe token: every action that may re-render it needs it.
    secret_values = selection.secrets() if action != "renew" else None
    if not dry_run:
        confirm(selection, f"ssl {action}", yes)
    reporter = make_reporter(as_json)
    outcomes, recorded = [], []
    try:
        for target in targets:
            t = _transport(selection, target, dry_run)
            token = probe_token_value(target, secret_values) if secret_values else None
            try:
                if action == "issue":
                    outcomes.append(ops.issue(t, target, token, reporter, staging=staging,
                                              email=email, force=force, dry_run=dry_run))
                elif action == "renew":
                    outcomes.append(ops.renew(t, target, reporter, force=force, dry_run=dry_run))
                else:
                    assert pair is not None
                    outcomes.append(ops.upload_pair(t, target, pair[0], pair[1], token,
                                                    reporter,
                                                    dry_run=dry_run))
                recorded += getattr(t, "recorded", [])
            finally:
                t.close()
        _result(reporter, action, outcomes, dry_run)
    finally:
        reporter.close()
    if dry_run:
        _print_recorded(recorded, reporter)
    return EXIT_OK


def _local_pair(action: str, selection: Selection, target: Any, where: str, cert: Path | None,
                key: Path | None, days: int, force: bool) -> tuple[bytes, bytes] | None:
    """install: the given files, checked; self-signed: a new pair. None for the others."""
    from adapto_ops.certs.pair import check_pair
    from adapto_ops.certs.run import require_mode

    names = selection.env.nginx.server_names
    if action == "install":
        require_mode(target, ("provided", "self-signed"), action, where)
        if cert is None or key is None:
            raise AdaptoError("ssl install needs --cert FILE and --key FILE")
        try:
            cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
        except OSError as exc:
            raise AdaptoError(f"{exc.filename}: {exc.strerror}") from None
        checked = check_pair(cert_pem, key_pem, names, cert_where=str(cert),
                             key_where=str(key))
        return checked.cert_pem, checked.key_pem
    if action == "self-signed":
        mode = selection.env.nginx.tls.mode
        if mode == "letsencrypt":
            raise AdaptoError(f"{where}: nginx.tls.mode is 'letsencrypt': its certificate files "
                              "are certbot's (use adapto ssl issue, or set tls.mode: self-signed)")
        if mode == "provided" and not force:
            raise AdaptoError(f"{where}: nginx.tls.mode is 'provided': a self-signed certificate "
                              "would replace the provided one; add --force if that is meant")
        if selection.env.sandbox is None and mode != "self-signed" and not force:
            raise AdaptoError(f"{where}: {selection.env_name!r} is not a sandbox; add --force")
        return _new_pair(selection, target, days)
    return None


def _new_pair(selection: Selection, target: Any, days: int) -> tuple[bytes, bytes]:
    """A pair for the site's names (and the host's address): signed by the sandbox's CA
    when this is a sandbox with one (so health verifies it), else self-signed."""
    import tempfile

    from adapto_ops.tls import write_self_signed, write_signed

    # The host's own view: paths may say {host}.
    names = [*target.env.nginx.server_names, target.host.address.strip("[]")]
    ca_file = target.env.health.ca_file
    with tempfile.TemporaryDirectory(prefix="adapto-ssl-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        ca = Path(ca_file) if ca_file else None
        if target.env.sandbox is not None and ca and ca.is_file() \
                and ca.with_suffix(".key").is_file():
            write_signed(names, cert, key, ca, ca.with_suffix(".key"), days=days)
        else:
            write_self_signed(names, cert, key, days=days)
        return cert.read_bytes(), key.read_bytes()


def _result(reporter: Reporter, action: str, outcomes: list[Any], dry_run: bool) -> None:
    verdict = "dry run: nothing was changed" if dry_run else \
        ", ".join(f"{o.host}: {o.result}" for o in outcomes)
    reporter.emit(Event("result", f"ssl {action}", verdict, data={
        "dry_run": dry_run,
        "hosts": [{"host": o.host, "result": o.result, **o.details} for o in outcomes]}))


def _print_recorded(recorded: list[Any], reporter: Reporter) -> None:
    if isinstance(reporter, JsonReporter):
        for c in recorded:
            reporter.emit(Event("info", "would-run", c.command, c.host))
        return
    out = sys.stdout
    out.write("\n# Commands ssl would run (nothing was changed):\n")
    for c in recorded:
        suffix = f"   # stdin: {c.stdin_bytes} bytes" if c.stdin_bytes else ""
        out.write(f"[{c.host}] {c.command}{suffix}\n")
    out.flush()
