"""`adapto recover nginx` on one host: the runbook's nginx recovery, step by step.

1. ``nginx -t``, the master pid and an HTTPS request for ``/`` through nginx.
2. ``nginx -t`` fails: show nginx's own error line. When the broken file is the
   site config adapto installs, put back the copy the current release keeps
   (it passed ``nginx -t`` when it was deployed) and test again. Any other
   file (the main nginx.conf, an include) is not adapto's: say so and stop.
3. nginx runs: reload; if the reload does not take (master gone, stale pid),
   restart. nginx does not run: start it.
4. Check again: ``nginx -t``, master pid, HTTPS ``/``.

Nothing is done when all three checks pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.commands.probe import http_probe, parse_probe
from adapto_ops.deploy.host import HostDeployer
from adapto_ops.deploy.restart import health_urls
from adapto_ops.deploy.state import NGINX_COPY
from adapto_ops.events import Event
from adapto_ops.facts import HostFacts, gather
from adapto_ops.recover.report import HostRecovery

FIRST_LOOK_S = 3.0
_ERROR = re.compile(r"\[(?:emerg|alert|crit)\]\s*(?:\d+#\d+:\s*)?(.*?)(?=\s+nginx: |$)")
_IN_FILE = re.compile(r" in (/\S+?):(\d+)\s*$")


@dataclass(frozen=True)
class NginxState:
    facts: HostFacts
    page_error: str | None  # None: / answers 200 over HTTPS through nginx

    @property
    def healthy(self) -> bool:
        return bool(self.facts.nginx_config_ok) and self.facts.nginx_running \
            and self.page_error is None

    def summary(self) -> str:
        test = {True: "nginx -t ok", False: "nginx -t FAILS", None: "nginx -t unknown"}
        running = (f"master pid {self.facts.nginx_pid}" if self.facts.nginx_running
                   else "not running")
        page = "https / answers" if self.page_error is None else f"https /: {self.page_error}"
        return f"{test[self.facts.nginx_config_ok]}; {running}; {page}"


def error_line(test_output: str) -> str:
    """nginx's own reason from ``nginx -t`` output (the first emerg/alert/crit message)."""
    found = _ERROR.search(test_output)
    if found:
        return found.group(1).strip()
    return test_output.strip()[:300] or "nginx -t failed without a message"


def broken_file(reason: str) -> str | None:
    """The file nginx names in its error (``... in /path/file:12``), if it names one."""
    found = _IN_FILE.search(reason)
    return found.group(1) if found else None


def read_state(d: HostDeployer, probe_timeout_s: float) -> NginxState:
    facts = gather(d.t, d.target)
    if not facts.nginx_running:
        return NginxState(facts, "nginx is not running")
    page = health_urls(d.target)[1]
    result = d.t.run(http_probe([page], probe_timeout_s), check=False, mutates=False,
                     what="probe / through nginx", timeout=probe_timeout_s + 30)
    probe = parse_probe(result.stdout, [page])[0]
    return NginxState(facts, None if probe.ok else probe.error or "?")


def recover_nginx(d: HostDeployer) -> HostRecovery:
    """Bring nginx back with the last good site config, or say what stops it."""
    out = HostRecovery(d.name)
    with d.step("status", "nginx -t, master pid, https /") as s:
        before = read_state(d, FIRST_LOOK_S)
        s.done_message, s.failed = before.summary(), not before.healthy
    if before.healthy:
        out.nothing_to_do = out.healthy = True
        _describe(out, before)
        return out
    if before.facts.nginx_config_ok is False and not _fix_config(d, out, before.facts):
        _describe(out, before, config_reason=out.still_failing[-1] if out.still_failing else "")
        return out
    if before.facts.nginx_running:
        _act(d, out, "reload", nginx_cmd.reload(d.env.nginx))
    else:
        _act(d, out, "start", nginx_cmd.start(d.env.nginx))
    if d.dry_run:
        _describe(out, before)
        return out
    after = _check(d)
    if not after.healthy and after.facts.nginx_config_ok:
        # A reload that did not take (master gone, stale pid), or a start that left
        # nginx half up: the next step is a full restart.
        _act(d, out, "restart", nginx_cmd.restart(d.env.nginx))
        after = _check(d)
    out.healthy = after.healthy
    _describe(out, after)
    return out


def _fix_config(d: HostDeployer, out: HostRecovery, facts: HostFacts) -> bool:
    """Put the last good site config back when the site file is what nginx rejects."""
    nginx = d.env.nginx
    reason = error_line(facts.nginx_config_error)
    d.reporter.emit(Event("fail", "nginx -t", reason, d.name, {"error": reason}))
    where = broken_file(reason)
    ours = {nginx.site_config_path, nginx.site_enabled_path}
    if where is not None and where not in ours:
        out.still_failing.append(f"nginx -t fails in {where}, which adapto does not install; "
                                 f"fix it by hand: {reason}")
        return False
    copy = f"{d.layout.current}/{NGINX_COPY}"
    rejected = f"{d.layout.state_dir}/rejected-{NGINX_COPY}"
    with d.step("restore", f"{nginx.site_config_path} from {copy}") as s:
        result = d.t.run(nginx_cmd.restore_site(nginx, copy, rejected), check=False,
                         what="restore the site config")
        if not result.ok:
            s.failed = True
            s.done_message = result.last_error_line()
            out.still_failing.append(f"nginx -t: {reason}; and the last good site config "
                                     f"cannot be put back: {result.last_error_line()}")
            return False
        if "SAME" in result.stdout:
            s.failed = True
            s.done_message = "the site config already is the last good one"
            out.still_failing.append(f"nginx -t fails outside the site config adapto installs; "
                                     f"fix it by hand: {reason}")
            return False
        s.done_message = f"last good site config back in place (the rejected one: {rejected})"
    out.actions.append(f"restore the site config from {copy}")
    if d.dry_run:
        return True
    with d.step("nginx -t", "again") as s:
        test = d.t.run(nginx_cmd.test(nginx), check=False, mutates=False, what="nginx -t")
        if not test.ok:
            again = error_line(test.stderr + "\n" + test.stdout)
            s.failed, s.done_message = True, again
            out.still_failing.append(f"nginx -t still fails with the last good site config: "
                                     f"{again}")
            return False
        s.done_message = "ok"
    return True


def _act(d: HostDeployer, out: HostRecovery, verb: str, command: str) -> None:
    with d.step(verb, f"nginx {verb}") as s:
        result = d.t.run(command, check=False, what=f"nginx {verb}", timeout=60)
        if not result.ok:
            s.failed = True
            s.done_message = result.last_error_line(("[emerg]", "[alert]", "[crit]"))
    out.actions.append(f"nginx {verb}" + ("" if result.ok else f" failed: {s.done_message}"))


def _check(d: HostDeployer) -> NginxState:
    with d.step("check", "nginx -t, master pid, https /") as s:
        state = read_state(d, d.env.health.timeout_s)
        s.done_message, s.failed = state.summary(), not state.healthy
    return state


def _describe(out: HostRecovery, state: NginxState, config_reason: str = "") -> None:
    facts = state.facts
    if facts.nginx_config_ok:
        out.now.append("nginx -t passes")
    else:
        reason = error_line(facts.nginx_config_error)
        out.now.append(f"nginx -t fails: {reason}")
        if not config_reason:
            out.still_failing.append(f"nginx -t: {reason}")
    if facts.nginx_running:
        out.now.append(f"nginx runs (master pid {facts.nginx_pid})")
    else:
        out.now.append("nginx is not running")
        out.still_failing.append("nginx is not running")
    if state.page_error is None:
        out.now.append("https / through nginx answers 200")
    elif facts.nginx_running:
        out.now.append(f"https / through nginx fails: {state.page_error}")
        out.still_failing.append(f"https / through nginx: {state.page_error}")
