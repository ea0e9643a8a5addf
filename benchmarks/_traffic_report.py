"""The table benchmarks/deploy_traffic.py prints from measure_traffic's rows."""

from __future__ import annotations

from collections import Counter
from typing import Any


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The merged table (per scenario and method), then each run's nginx evidence."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if "reloads" in row:
            continue
        m = merged.setdefault((row["scenario"], row["method"]),
                              {"runs": 0, "requests": 0, "failed": 0, "kinds": Counter(),
                               "dup": 0, "missing": 0, "fbs": 0, "cmd": [], "resent": 0})
        m["runs"] += 1
        m["requests"] += row["requests"]
        m["failed"] += row["failed"]
        m["kinds"].update(row["failed_by_kind"])
        m["dup"] += row["duplicates"] or 0
        m["missing"] += row["missing"] or 0
        m["fbs"] += row["failed_but_stored"] or 0
        m["resent"] += row.get("resent", 0)
        m["cmd"].append(f"{row['command_s']:.1f}")
    head = ["scenario", "method", "runs", "command s", "requests", "failed",
            "502/reset/timeout/other", "duplicates", "missing", "failed but stored",
            "resent"]
    body = [[s, meth, str(m["runs"]), "/".join(m["cmd"]), str(m["requests"]), str(m["failed"]),
             "/".join(str(m["kinds"].get(k, 0)) for k in ("502", "reset", "timeout", "other")),
             *(("-", "-", "-") if meth != "POST" else
               (str(m["dup"]), str(m["missing"]), str(m["fbs"]))),
             str(m["resent"]) if meth == "GET/resend" else "-"]
            for (s, meth), m in merged.items()]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in body:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    for row in rows:
        if "reloads" in row:
            print(f"\nnginx reload race: {row['reloads']} reloads x {row['clients']} idle "
                  f"keep-alive clients ({row['requests']} requests, {row['seconds']} s): "
                  f"careful client {row['failed']} failed "
                  f"({row['reloads_with_failure']} reloads with a failure; "
                  f"{row['failed_by_kind'] or '-'}); browser-like client (one resend of an "
                  f"idempotent request) {row['browser_like_failed']} failed; "
                  f"{row['closed_before_send']} seen closed before sending (reconnected)")
        elif row["nginx_errors"]:
            print(f"  {row['scenario']} {row['method']} #{row['run']}: nginx error log "
                  f"{row['nginx_errors']}")
            for line in row["nginx_error_samples"]:
                print(f"    {line}")
