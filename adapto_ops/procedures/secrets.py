"""`adapto secrets check|set`: which secrets are missing, and setting one from stdin.

`check` resolves every needed name here (process environment, then the
secrets file) and, unless ``--local``, reads the names each backend host's
shared .env sets, on the host (values never cross the wire). `set` reads a
value from stdin only (argv ends up in shell history and in `ps`), and
rewrites the secrets file atomically at mode 0600. Nothing here prints a
value: every line is built from names, paths and counts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError, SecretError
from adapto_ops.inventory.secrets import resolve_secrets, secrets_file_warning, set_secret
from adapto_ops.secrets_check import (
    LOCAL,
    SecretNeed,
    SecretProblem,
    missing_on_host,
    missing_secrets,
    needed_secrets,
)
from adapto_ops.selection import Selection, select

# A secret is a line of text, not a file: anything larger is a mistake (a key file piped in).
MAX_VALUE_BYTES = 64 * 1024


def _host_problems(selection: Selection) -> tuple[dict[str, Any], list[SecretProblem]]:
    """Per backend host: what its .env sets (names) or why it could not be read."""
    from adapto_ops.deploy.session import open_transport, parallel
    from adapto_ops.facts import read_env_file

    targets = [t for t in selection.targets if "backend" in t.host.roles]

    def read(target: Any) -> Any:
        transport = open_transport(selection, target)
        try:
            return read_env_file(transport, target)
        finally:
            transport.close()

    hosts: dict[str, Any] = {}
    problems: list[SecretProblem] = []
    for target, result in zip(targets, parallel(targets, read), strict=True):
        name = target.host.name
        if isinstance(result, BaseException):
            reason = result.message if isinstance(result, AdaptoError) else type(result).__name__
            hosts[name] = {"read": False, "error": reason}
            continue
        hosts[name] = {"read": True, "env_file": target.layout.env_file,
                       "exists": result.exists, "names": sorted(result.names),
                       "mode": None if result.mode is None else f"{result.mode:04o}",
                       "owner": result.owner}
        problems += missing_on_host(selection.env, name, target.host.user, result,
                                    target.layout.env_file)
    return hosts, problems


@dataclass(frozen=True)
class SecretsReport:
    """What `secrets check` found: names only, never a value."""

    needs: list[SecretNeed]
    local: frozenset[str]  # needed names with a value here
    hosts: dict[str, Any]  # per backend host: what its .env sets, or why it was not read
    problems: list[SecretProblem]

    @property
    def failing(self) -> list[SecretProblem]:
        return [p for p in self.problems if p.failing]


def collect_secrets_report(selection: Selection, *, local_only: bool = False) -> SecretsReport:
    """Missing names here, the secrets file's mode and, unless ``local_only``, each host's .env.

    For `adapto audit` as for `secrets check`: raises only on bad input; an
    unreachable host is in ``hosts`` with its error, not a problem.
    """
    needs = needed_secrets(selection.env)
    path = selection.secrets_file
    resolved = resolve_secrets([n.name for n in needs], path)
    problems = missing_secrets(selection.env, resolved)
    warning = secrets_file_warning(path)
    if warning:
        problems.append(SecretProblem("", LOCAL, "permissions", (), warning))
    host_info: dict[str, Any] = {}
    if not local_only:
        host_info, on_hosts = _host_problems(selection)
        problems += on_hosts
    return SecretsReport(needs, frozenset(resolved.values), host_info, problems)


def run_secrets_check(*, inventory: str | None, env_name: str, hosts: list[str] | None,
                      local_only: bool, as_json: bool) -> int:
    """List missing secret names here and on each backend host; exit 1 if any is missing."""
    selection = select(inventory, env_name, hosts)
    report = collect_secrets_report(selection, local_only=local_only)
    if as_json:
        print(json.dumps({
            "environment": selection.env_name, "secrets_file": str(selection.secrets_file),
            "ok": not report.failing,
            "needed": [{"name": n.name, "needed_by": list(n.needed_by), "shipped": n.on_host,
                        "local": n.name in report.local} for n in report.needs],
            "hosts": report.hosts,
            "problems": [p.as_dict() for p in report.problems],
        }, indent=2))
    else:
        _print_table(selection, report, sys.stdout)
    for host, info in report.hosts.items():
        if not info["read"]:
            print(f"note: {host}: not checked: {info['error']}", file=sys.stderr)
    return EXIT_FAILED if report.failing else EXIT_OK


def _print_table(selection: Selection, report: SecretsReport, out: TextIO) -> None:
    hosts = report.hosts
    read_hosts = [h for h, info in hosts.items() if info["read"] and info["exists"]]
    width = max([len(n.name) for n in report.needs] + [6])
    head = f"{'secret':<{width}}  {'here':<7}" + "".join(f"  {h:<9}" for h in read_hosts)
    print(f"secrets of {selection.env_name} (file {selection.secrets_file})", file=out)
    print(head + "  needed by", file=out)
    for need in report.needs:
        row = f"{need.name:<{width}}  {'ok' if need.name in report.local else 'MISSING':<7}"
        for host in read_hosts:
            cell = ("-" if not need.on_host
                    else "ok" if need.name in hosts[host]["names"] else "MISSING")
            row += f"  {cell:<9}"
        print(row + "  " + ", ".join(need.needed_by), file=out)
    for problem in report.problems:
        if problem.name == "" or problem.kind != "missing":
            label = "error" if problem.failing else "note"
            print(f"{label}: {problem.message}", file=out)
    failing = report.failing
    print(f"{len(failing)} problem(s)" if failing else "all secrets set", file=out)


def read_value(stream: TextIO, name: str) -> str:
    """The value from ``stream``: a prompt without echo on a terminal, else all of stdin.

    One trailing newline (what `echo` and a heredoc add) is dropped; an empty value
    or one over :data:`MAX_VALUE_BYTES` is refused.
    """
    if stream.isatty():
        import getpass

        value = getpass.getpass(f"{name} (input hidden): ", stream=sys.stderr)
    else:
        value = stream.read(MAX_VALUE_BYTES + 1)
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise SecretError(f"{name}: the value on stdin is over {MAX_VALUE_BYTES // 1024} KiB;"
                              " a secret is one line of text")
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretError(f"{name}: no value on stdin; pipe it in, e.g. "
                          f"`printf %s \"$VALUE\" | adapto secrets set {name} -e ENV`")
    if "\0" in value:
        raise SecretError(f"{name}: the value on stdin contains a NUL byte")
    return value


def run_secrets_set(*, inventory: str | None, env_name: str, name: str,
                    argv_value: str | None, stream: TextIO, push: bool = False) -> int:
    """Store ``name`` (read from ``stream``) in the environment's secrets file, mode 0600.

    ``push``: then `deploy backend` (confirmed by asking for it): the new .env goes out
    with a new release and the instances restart one at a time, health-gated.
    """
    if argv_value is not None:
        # Refused before anything is read or written: it is in the shell's history now.
        raise SecretError(f"secrets set {name}: refusing a value given on the command line "
                          "(shell history and `ps` would keep it); pipe it on stdin instead, "
                          "and consider it exposed: rotate it")
    selection = select(inventory, env_name)
    names = selection.env.secrets.names
    if name not in names:
        raise SecretError(f"{selection.loaded.path}: environment {env_name!r}: {name} is not in "
                          f"secrets.names ({', '.join(names) or 'none'}); add it there first")
    path = selection.secrets_file
    value = read_value(stream, name)
    added = set_secret(path, name, value)
    print(f"{name}: {'added to' if added else 'replaced in'} {path} (mode 0600)",
          file=sys.stderr)
    import os

    if os.environ.get(name):
        print(f"note: {name} is also exported in this shell, which wins over the file; "
              f"unset it to use the new value", file=sys.stderr)
    if push:
        from adapto_ops.procedures.deploy import run_deploy

        return run_deploy(inventory=inventory, env_name=env_name, hosts=None, what="backend",
                          dry_run=False, yes=True, skip_build=True, break_lock=False,
                          force=False, as_json=False)
    print(f"next: adapto deploy backend -e {env_name} ships it to the hosts' shared .env "
          "(or set it with --push)", file=sys.stderr)
    return EXIT_OK
