"""`adapto status` for a person: one Rich table per host, drawn from the JSON rows.

Drawing from the very data `--json` prints keeps the two views from drifting.
Colour marks what needs a look (red: down, crash loop, invalid config,
certificate < 14 days; yellow: no boot persistence), but status never fails
for it: judging health is `adapto health`'s job.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from adapto_ops.output import console
from adapto_ops.procedures.status import CERT_WARN_DAYS, age_seconds


def human_age(seconds: float | None) -> str:
    """``3d``, ``5h``, ``12m``, ``40s``, or ``?``."""
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def human_bytes(count: float | None) -> str:
    if count is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def process_rows(pm2: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, state, detail) for the PM2 daemon, each process and boot persistence."""
    rows: list[tuple[str, str, str]] = []
    if not pm2["daemon"]:
        rows.append(("pm2", "[red]daemon not running[/]", "no process runs under PM2"))
    elif pm2["error"]:
        rows.append(("pm2", "[red]unreadable[/]", pm2["error"]))
    for p in pm2["processes"]:
        color = "green" if p["status"] == "online" else "red"
        state = f"[{color}]{escape(p['status'])}[/]"
        if p["crash_loop"]:
            state = f"[bold red]CRASH LOOP[/] ({escape(p['status'])})"
        cpu = f"{p['cpu_percent']:.0f}%" if p["cpu_percent"] is not None else "?"
        restarts = f"{p['restarts']} restarts ({p['unstable_restarts']} unstable)"
        detail = (f"pid {p['pid'] or '-'}, up {human_age(p['uptime_s'])}, {restarts}, "
                  f"cpu {cpu}, mem {human_bytes(p['memory_bytes'])}"
                  if p["status"] == "online" else restarts)
        rows.append((f"pm2 {p['name']}", state, detail))
    for name in pm2["not_in_pm2"]:
        rows.append((f"pm2 {name}", "[red]not in PM2[/]", "the instance is not running"))
    unit = pm2["startup_unit"]
    saved = "saved" if pm2["saved"] else "[yellow]not saved[/]"
    if pm2["boot"] == "sandbox up":
        rows.append(("pm2 boot", f"list {saved}",
                     "`adapto sandbox up` resurrects the saved list, as a boot would"))
        return rows
    unit_text = "enabled" if unit == "enabled" else f"[yellow]{escape(unit)}[/]"
    rows.append(("pm2 boot", f"list {saved}, startup unit {unit_text}",
                 "processes come back after a reboot" if pm2["saved"] and unit == "enabled"
                 else "a production deploy runs `pm2 startup` and `pm2 save`"))
    return rows


def host_rows(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every (what, state, detail) line of one reachable host."""
    rows = process_rows(row["pm2"])
    nginx = row["nginx"]
    rows.append(("nginx", f"[green]running[/] (master pid {nginx['pid']})" if nginx["running"]
                 else "[red]not running[/]", ""))
    config_state = {True: "[green]valid[/]", False: "[red]invalid[/]"}
    rows.append(("nginx config", config_state.get(nginx["config_ok"], "not checked"),
                 "nginx -t passed" if nginx["config_ok"] else nginx["config_error"] or ""))
    release = row["release"]
    backend = (f", backend from {release['backend_release']}"
               if release["backend_release"] not in (None, release["id"]) else "")
    rows.append(("release", escape(release["id"]) if release["id"] else "[red]none[/]",
                 f"{human_age(release['age_s'])} old, revision {release['revision'] or '?'}"
                 + backend if release["id"] else "nothing deployed yet"))
    cert = row["certificate"]
    if cert["days_left"] is None:
        rows.append(("certificate", "[red]unreadable[/]", cert["error"] or ""))
    else:
        color = "red" if cert["days_left"] < CERT_WARN_DAYS else "green"
        rows.append(("certificate", f"[{color}]{cert['days_left']:.0f} days left[/]",
                     f"until {cert['not_after']}, {cert['subject']}"))
    firewall = row["firewall"]
    rules = "; ".join(" ".join(r.split()) for r in firewall["rules"])
    rows.append(("firewall", f"ufw {escape(firewall['ufw'])}", rules))
    disk = row["disk"]
    rows.append(("disk", "?" if disk is None else
                 f"{human_bytes(disk['free_bytes'])} free of {human_bytes(disk['total_bytes'])}"
                 f" ({disk['free_percent']:.0f}%)", disk["mount"] if disk else ""))
    for holder in row["port_holders"]:
        rows.append((f"port {holder['port']}", f"[red]held by pid {holder['pid']}[/]",
                     holder["command"]))
    last = row["last_deploy"]
    if last:
        result = last.get("result") or "?"
        color = "green" if result in {"ok", "unchanged"} else "red"
        rows.append(("last deploy",
                     f"{escape(str(last.get('action')))}: [{color}]{escape(str(result))}[/]",
                     f"{last.get('release')}, {human_age(age_seconds(last.get('time')))} ago "
                     f"by {last.get('user') or '?'}"
                     + (f": {last['error']}" if last.get("error") else "")))
    else:
        rows.append(("last deploy", "none", "no history on this host"))
    return rows


def print_status(env_name: str, rows: list[dict[str, Any]]) -> None:
    """One table per host (an unreachable host gets one line, on stderr, from the caller)."""
    from rich.table import Table

    out = console()
    for row in rows:
        if not row["reachable"]:
            out.print(f"[red]{escape(row['host'])}: unreachable[/]")
            continue
        table = Table(title=f"{env_name} / {row['host']} (read in {row['read_s']:.2f}s)",
                      title_justify="left")
        for column in ("what", "state", "detail"):
            table.add_column(column, overflow="fold")
        for what, state, detail in host_rows(row):
            # State strings are ours (markup); detail text comes from the host: escaped.
            table.add_row(escape(what), state, escape(detail))
        out.print(table)
