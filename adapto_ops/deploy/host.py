"""The steps of a deploy on one host, through one transport.

Order matters and is chosen so that a failure at any point leaves the site
serving the previous release:

1. prepare  — new ``releases/<id>/`` (hard links of the previous release,
               then only changed files sent), dependencies, env, configs;
               nothing live has changed yet.
2. nginx    — the site file installed and ``nginx -t``-ed; a rejected file
               is put back before the command returns; no reload yet.
3. activate — env file and ``current`` switched (one rename each), nginx
               reloaded gracefully, backend instances replaced one at a time,
               each healthy on its own port before the next is touched.
4. gate     — ``/api/health`` through nginx over TLS and on every instance.
Rollback runs 3 again with the previous release.

Each step is one SSH round trip where it can be: on loopback a round trip
costs ~50 ms, and a no-change deploy is mostly round trips.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.commands import pm2 as pm2_cmd
from adapto_ops.commands import release as rel
from adapto_ops.commands.probe import ProbeResult, http_probe, parse_probe
from adapto_ops.deploy.artifacts import Artifacts
from adapto_ops.deploy.manifest import (
    Manifest,
    UploadPlan,
    carried_assets,
    from_json,
    plan_upload,
    tarball,
    to_json,
)
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.events import Event, Reporter, Step
from adapto_ops.facts import gather
from adapto_ops.health.classify import probe_reason
from adapto_ops.remote import CommandFailed, Transport
from adapto_ops.render.configs import (
    UPSTREAM_FAIL_TIMEOUT_S,
    RenderedFile,
    Target,
    instance_name,
    render_nginx,
    render_pm2,
)

ECOSYSTEM = "ecosystem.config.js"
NGINX_COPY = "nginx-site.conf"


class HealthFailed(OperationFailed):
    """The new release did not pass its health checks."""


class LockHeld(AdaptoError):
    """Another deploy holds the host's lock (exit code 1: nothing was wrong with the input)."""

    exit_code = 1


@dataclass(frozen=True)
class ReleaseInfo:
    id: str
    complete: bool
    meta: dict[str, Any] | None
    live: bool = False

    @property
    def backend_release(self) -> str:
        return str((self.meta or {}).get("backend_release") or self.id)


@dataclass(frozen=True)
class HostState:
    current: str | None
    releases: list[ReleaseInfo]
    lock: str | None

    def release(self, release_id: str | None) -> ReleaseInfo | None:
        return next((r for r in self.releases if r.id == release_id), None)


@dataclass
class Prepared:
    release_id: str
    previous: ReleaseInfo | None
    plan: UploadPlan
    bytes_sent: int
    restart_backend: bool
    backend_release: str
    nginx_file: RenderedFile
    files: dict[str, str] = field(default_factory=dict)  # remote path -> new text (for diffs)
    unchanged_from: str | None = None  # set when the live release already has this content
    deps_hash: str | None = None
    env_text: str = ""  # the env file with real values: compared, never printed
    dist_changed: bool = True  # the frontend differs from the previous release's

    def as_release(self) -> ReleaseInfo:
        """The new release as the state listing will show it once it is live."""
        meta = {"backend_release": self.backend_release, "deps_hash": self.deps_hash}
        return ReleaseInfo(self.release_id, True, meta, True)


def parse_state(text: str) -> HostState:
    data = json.loads(text or "{}")
    releases = [ReleaseInfo(r["id"], bool(r["complete"]), r.get("meta"), bool(r.get("live")))
                for r in data.get("releases", [])]
    return HostState(data.get("current"), releases, data.get("lock"))


def probe_address(target: Target) -> str:
    """Where nginx can be reached from the host itself."""
    first = target.env.nginx.listen[0]
    return "127.0.0.1" if first in {"0.0.0.0", "*", "[::]"} else first.strip("[]")


def dist_hash(manifest: Manifest) -> str:
    """Identity of the frontend alone: equal hashes need no nginx reload on a switch."""
    dist = {p: e for p, e in manifest.items() if p.startswith("dist/")}
    return hashlib.sha256(json.dumps(to_json(dist), sort_keys=True).encode()).hexdigest()[:24]


def content_hash(manifest: Manifest, deps_hash: str | None, configs: list[str]) -> str:
    """Identity of everything a release puts live; equal hashes mean nothing would change."""
    digest = hashlib.sha256(json.dumps(to_json(manifest), sort_keys=True).encode())
    digest.update(str(deps_hash).encode())
    for text in configs:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:24]


class HostDeployer:
    """Deploy, activate, check and roll back releases on one host."""

    def __init__(self, transport: Transport, target: Target, reporter: Reporter,
                 *, dry_run: bool = False, probe_token: str | None = None) -> None:
        self.t = transport
        self.target = target
        self.env = target.env
        self.layout = target.layout
        self.reporter = reporter
        self.dry_run = dry_run
        # Sent (on stdin) with every health probe, so nginx's rate limits let it through.
        self.probe_token = probe_token
        self.name = target.host.name
        self.lock_token: str | None = None
        # Instances the last rolling restart touched: a rollback replaces only these.
        self.replaced: list[str] = []
        # Instances found not running and started by `start_missing`.
        self.started: list[str] = []

    def step(self, step: str, message: str = "") -> Step:
        return Step(self.reporter, self.name, step, message)

    # --- state and lock ----------------------------------------------------

    def read_state(self) -> HostState:
        result = self.t.run(rel.read_state(self.layout), mutates=False, what="read release state")
        return parse_state(result.stdout)

    def lock_and_read_state(self, info: dict[str, Any], *, break_lock: bool) -> HostState:
        """Take the host's deploy lock and read the release state, in one round trip."""
        self.lock_token = str(info["token"])
        result = self.t.run(rel.lock_and_read_state(self.layout, break_first=break_lock),
                            check=False, stdin=json.dumps(info).encode(),
                            what="take the deploy lock")
        if result.exit_code == 75 and not break_lock and lock_holder_is_dead(result.stdout):
            # Left by a deploy from this very machine whose process is gone (killed).
            self.reporter.emit(Event("warn", "lock", f"breaking a stale lock: "
                                     f"{describe_lock(result.stdout)}, and that process is gone",
                                     self.name))
            return self.lock_and_read_state(info, break_lock=True)
        if result.exit_code == 75:
            self.lock_token = None
            raise LockHeld(f"{self.name}: {describe_lock(result.stdout)}; wait for it to finish, "
                           "or if it died, run again with --break-lock")
        if not result.ok:
            self.lock_token = None
            raise CommandFailed(self.name, result, "take the deploy lock")
        return parse_state(result.stdout)

    def release_lock(self) -> None:
        if self.lock_token:
            self.t.run(rel.release_lock(self.layout, self.lock_token), check=False,
                       what="release the lock")
            self.lock_token = None

    # --- 1. prepare ----------------------------------------------------------

    def prepare(self, release_id: str, artifacts: Artifacts, state: HostState,
                env_file: RenderedFile, *, force: bool = False,
                skip_unchanged: bool = False) -> Prepared:
        """Everything of the new release on the host, nothing live touched.

        ``skip_unchanged``: when the live release already has exactly this content,
        send nothing and return with ``unchanged_from`` set. ``force``: replace the
        backend instances even if what they run did not change.
        """
        previous = state.release(state.current) if state.current else None
        if previous is not None and not previous.complete:
            previous = None
        missing = [c for c in ("frontend", "backend") if c not in artifacts.components]
        if missing and previous is None:
            raise AdaptoError(f"{self.name}: no release to take the {missing[0]} from yet; "
                              "the first deploy must be `adapto deploy all`")
        # The state carries the current release's manifest: the one we diff against.
        prev_meta = (previous.meta or {}) if previous else {}
        prev_manifest = from_json(prev_meta.get("manifest"))
        prev_carried = set(prev_meta.get("carried", []))
        # Components not deployed now are kept as they are in the previous release.
        manifest: Manifest = dict(artifacts.manifest)
        for component, prefix in (("frontend", "dist/"), ("backend", "backend/")):
            if component in missing:
                manifest |= {p: e for p, e in prev_manifest.items() if p.startswith(prefix)}
        own_previous = {p: e for p, e in prev_manifest.items() if p not in prev_carried}
        carried = carried_assets(own_previous, manifest, f"dist/{self.env.frontend.assets_dir}/")
        plan = plan_upload(manifest, prev_manifest, keep=carried)

        deps_hash = artifacts.deps_hash or prev_meta.get("deps_hash")
        release_dir = self.layout.release(release_id)
        ecosystem_shape = render_pm2(self.target, "@release").text
        backend_identity = content_hash(
            {p: e for p, e in manifest.items() if p.startswith("backend/")}, deps_hash,
            [env_file.text, ecosystem_shape],
        )
        # Instances are replaced only when what they run changed (code, dependencies,
        # env, PM2 settings), or on --force; a frontend change leaves them running.
        restart_backend = "backend" in artifacts.components and (
            force or previous is None or prev_meta.get("backend_hash") != backend_identity)
        backend_release = release_id if restart_backend else (
            previous.backend_release if previous else release_id)
        ecosystem = render_pm2(self.target, release_dir)
        nginx_file = render_nginx(self.target, self.probe_token)
        identity = content_hash(
            manifest, deps_hash,
            [env_file.text, nginx_file.text, ecosystem_shape],
        )
        if (skip_unchanged and previous is not None and previous.live
                and prev_meta.get("content_hash") == identity):
            return Prepared(release_id, previous, plan, 0, False, previous.backend_release,
                            nginx_file, unchanged_from=previous.id, deps_hash=deps_hash)

        meta = {
            "id": release_id, "revision": artifacts.revision, "deployer": artifacts.deployer,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "components": list(artifacts.components), "backend_release": backend_release,
            "deps_hash": deps_hash, "carried": carried, "content_hash": identity,
            "dist_hash": dist_hash(manifest), "backend_hash": backend_identity,
            # What the folder really holds, carried assets included, so that the
            # next deploy can drop them (they are kept for one release only).
            "manifest": to_json(manifest | {p: prev_manifest[p] for p in carried}),
        }
        base = f"releases/{release_id}/"
        generated = [
            (f"{base}{ECOSYSTEM}", ecosystem.text.encode(), 0o644),
            (f"{base}{NGINX_COPY}", nginx_file.text.encode(), 0o644),
            (f"{base}backend/RELEASE", f"{release_id}\n".encode(), 0o644),
            (f"{base}{rel.RELEASE_META}", json.dumps(meta).encode(), 0o644),
            (rel.staged_env(self.layout, release_id).removeprefix(self.layout.root + "/"),
             env_file.text.encode(), 0o600),
        ]
        if plan.delete:
            generated.append((f"{base}{rel.DELETE_LIST}",
                              b"\0".join(p.encode() for p in plan.delete), 0o600))
        dep_dir = ".venv" if self.env.backend.kind == "python" else "node_modules"
        has_build = restart_backend and bool(self.env.backend.build)
        with self.step("upload", f"{len(plan.send)} changed, {plan.unchanged} unchanged") as s:
            blob = tarball(plan.send, artifacts.sources, manifest, prefix=base, extra=generated)
            result = self.t.run(
                rel.apply_bundle(self.layout, release_id, previous.id if previous else None,
                                 link_backend=not has_build, deps_hash=deps_hash,
                                 deps_dir=dep_dir, finish=not has_build),
                stdin=blob, timeout=1800, what="upload the release",
                progress=self._upload_progress())
            sent = len(plan.send)
            s.done_message = (f"{sent} sent ({len(blob) / 1e6:.2f} MB), "
                              f"{plan.unchanged} linked, {len(plan.delete)} removed, "
                              f"{len(carried)} old assets kept")
            s.data = {"sent_files": sent, "bytes_sent": len(blob), "unchanged": plan.unchanged,
                      "deleted": len(plan.delete)}
        if "NEEDS_DEPS" in result.stdout and deps_hash:
            self._install_dependencies(release_id, deps_hash, dep_dir)
        if has_build:
            with self.step("build", f"backend: {self.env.backend.build}"):
                self.t.run(rel.run_in(release_dir + "/backend", self.env.backend.build),
                           timeout=1800, what="backend build")
        if "NEEDS_DEPS" in result.stdout or has_build:
            self.t.run(rel.mark_complete(self.layout, release_id), what="mark release complete")
        return Prepared(release_id, previous, plan, len(blob), restart_backend, backend_release,
                        nginx_file, {env_file.path: env_file.shown, ecosystem.path: ecosystem.text},
                        deps_hash=deps_hash, env_text=env_file.text,
                        dist_changed=previous is None or any(
                            p.startswith("dist/") for p in plan.send + plan.delete))

    def _upload_progress(self) -> Callable[[int, int], None]:
        """Progress events for the upload, at most every 0.2 s (a terminal redraws them)."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or done == total:
                last[0] = now
                self.reporter.emit(Event("progress", "upload",
                                         f"{done / 1e6:.1f}/{total / 1e6:.1f} MB", self.name,
                                         {"done": done, "total": total}))

        return report

    def _install_dependencies(self, release_id: str, deps_hash: str, dep_dir: str) -> None:
        backend = self.env.backend
        if backend.install:
            with self.step("deps", f"install ({deps_hash}): {backend.install}"):
                self.t.run(rel.install_deps(self.layout, release_id, deps_hash,
                                            backend.dependency_manifest, backend.install),
                           timeout=1800, what=f"backend install `{backend.install}`")
        self.t.run(rel.link_shared(self.layout, release_id, deps_hash, dep_dir),
                   what="link .env and dependencies")

    # --- 2. nginx --------------------------------------------------------------

    def install_nginx(self, release_id: str) -> bool:
        """Install the release's site file and test it; False when it was already in place.

        Raises with nginx's own words (and the previous file back) if nginx rejects it.
        """
        nginx = self.env.nginx
        staged = nginx.site_config_path + ".adapto-new"
        copy = shlex.quote(f"{self.layout.release(release_id)}/{NGINX_COPY}")
        site, enabled = shlex.quote(nginx.site_config_path), shlex.quote(nginx.site_enabled_path)
        with self.step("nginx", "install + nginx -t") as s:
            script = (f"if cmp -s {copy} {site} && [ -L {enabled} ]; then echo UNCHANGED; exit 0; "
                      f"fi\nmkdir -p \"$(dirname {shlex.quote(staged)})\" && "
                      f"cp {copy} {shlex.quote(staged)}\n"
                      + nginx_cmd.install_site(nginx, staged))
            result = self.t.run(script, check=False, what="nginx -t")
            if result.ok and "UNCHANGED" in result.stdout:
                s.done_message = "site config unchanged"
                return False
            if not result.ok:
                raise OperationFailed(
                    f"{self.name}: nginx rejected the new site config, the previous one is back "
                    f"in place and nginx was not reloaded: "
                    f"{result.last_error_line(('[emerg]', '[crit]', '[alert]'))}"
                )
        return True

    # --- 3. activate --------------------------------------------------------------

    def switch(self, release_id: str, *, reload: bool = True) -> None:
        """Env file and `current` to the release, then (if needed) a graceful nginx reload.

        The reload empties open_file_cache, so new frontend files are served at
        once; it is skipped when neither the site config nor the frontend changed,
        because a reload closes idle client keep-alive connections and a request
        racing that close fails.
        """
        with self.step("switch", f"current -> {release_id}"
                       + ("" if reload else " (nginx unchanged, no reload)")):
            command = rel.switch(self.layout, release_id)
            if reload:
                command += " && " + nginx_cmd.reload(self.env.nginx)
            self.t.run(command, what="switch" + (" and reload nginx" if reload else ""))

    def restore_env(self) -> None:
        """The .env this deploy replaced, back in place (before a rollback restarts anything)."""
        self.t.run(rel.restore_env(self.layout), what="restore the previous .env")

    def rolling_restart(self, backend_release: str, names: list[str] | None = None) -> list[str]:
        """Replace instances one at a time; returns those replaced. Raises HealthFailed.

        Each instance is deleted and started afresh from the release's own
        ecosystem file: PM2 keeps the cwd it resolved at first start across
        restarts and reloads (PM2 #2963, #2510), so a restart would keep
        running the old release.
        """
        backend = self.env.backend
        ecosystem = f"{self.layout.release(backend_release)}/{ECOSYSTEM}"
        timeout = self.env.health.instance_start_timeout_s
        done = self.replaced = []
        ports = [p for p in backend.ports
                 if names is None or instance_name(backend.name, p) in names]
        strays = self._strays() if names is None else {}
        # Ports a stray still holds go last, so the others serve while it is replaced.
        held = {port or backend.base_port for port in strays.values()}
        ports.sort(key=lambda p: p in held)
        if backend.instances == 1 and not self.dry_run:
            self.reporter.emit(Event("warn", "restart", "one backend instance: requests fail "
                                     "while it restarts; set backend.instances to 2 or more",
                                     self.name))
        elif strays and all(p in held for p in ports):
            self.reporter.emit(Event("warn", "restart", f"{', '.join(strays)} hold(s) every "
                                     "port: a short outage while they are replaced", self.name))
        for index, port in enumerate(ports):
            name = instance_name(backend.name, port)
            url = f"http://{_url_host(backend.bind)}:{port}{backend.health_path}"
            with self.step("restart", f"{name} ({index + 1}/{len(ports)})") as s:
                done.append(name)
                script = f"{pm2_cmd.delete(name)}\n{pm2_cmd.start(ecosystem, name)}"
                if strays and port in held:
                    # The runbook's `pm2 start npm --name ...` (or a dropped instance)
                    # goes only now, when the new instances on free ports are serving.
                    script = "\n".join(pm2_cmd.delete(n) for n in strays) + "\n" + script
                    strays = {}
                if self.dry_run:
                    self.t.run(script, what=f"restart {name}")
                    continue
                # stdin (the probe token) is the probe's alone, not PM2's.
                probe_cmd = http_probe([(url, "")], timeout, with_token=True)
                result = self.t.run(f"{{ {script}\n}} < /dev/null\n{probe_cmd}", check=False,
                                    stdin=self._token_stdin(), what=f"restart {name}",
                                    timeout=timeout + 60)
                probe = parse_probe(result.stdout, [(url, "")])[0]
                if not probe.ok:
                    why = (probe_reason(probe.status, probe.error) if probe.error
                           else result.last_error_line())
                    raise HealthFailed(f"{self.name}: {name} not healthy on {url} after "
                                       f"{timeout:.0f}s: {why}")
                s.done_message = f"{name} healthy ({probe.ms:.0f} ms)"
            if index < len(ports) - 1 and not self.dry_run:
                # nginx may still count the instance as failed: fail_timeout, measured
                # on nginx's one-second clock, so up to one second more.
                time.sleep(UPSTREAM_FAIL_TIMEOUT_S + 1)
        if strays:  # on ports nginx no longer sends to: remove once the new ones serve
            self.t.run("\n".join(pm2_cmd.delete(n) for n in strays), what="remove old apps")
        return done

    def start_missing(self, backend_release: str) -> list[str]:
        """Start the instances PM2 does not run (a reboot without PM2's boot unit, a kill).

        A deploy that changes nothing in the backend leaves running instances
        alone, but must not leave dead ones dead: they are started one at a time
        from ``backend_release``, each healthy before the next. Returns their names.
        """
        self.started = []
        if self.dry_run:
            return []
        backend = self.env.backend
        urls = [(f"http://{_url_host(backend.bind)}:{p}{backend.health_path}", "")
                for p in backend.ports]
        quick = self.t.run(http_probe(urls, 0), check=False, mutates=False,
                           what="are the instances answering", timeout=30)
        if all(p.ok for p in parse_probe(quick.stdout, urls)):
            return []  # one try each, ~60 ms: the full facts read costs ten times that
        facts = gather(self.t, self.target)
        if facts.pm2_daemon and facts.pm2 is None:
            # The daemon runs but its list is unreadable: do not start a second copy.
            self.reporter.emit(Event("warn", "start", f"PM2 list unreadable ({facts.pm2_error})",
                                     self.name))
            return []
        missing = facts.instances_not_online(backend.name, backend.ports)
        self.started = missing  # set first: a failed start is still worth a history line
        if missing:
            self.reporter.emit(Event("warn", "start", f"not running: {', '.join(missing)}; "
                                     f"starting from release {backend_release}", self.name))
            self.rolling_restart(backend_release, names=missing)
        return missing

    def _strays(self) -> dict[str, int | None]:
        """PM2 apps of this backend outside the new instance set, with the PORT they use.

        The runbook's own `pm2 start npm --name ai-platform-backend -- start` is
        one (on a server adapto takes over); instances dropped when `instances`
        shrinks are others. They are removed during the rolling restart.
        """
        backend = self.env.backend
        result = self.t.run(pm2_cmd.jlist(), check=False, mutates=False, what="pm2 jlist")
        lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
        try:
            apps = json.loads(lines[-1]) if lines else []
        except json.JSONDecodeError:
            return {}
        wanted = {instance_name(backend.name, p) for p in backend.ports}
        strays: dict[str, int | None] = {}
        for app in apps:
            name, env = app.get("name"), app.get("pm2_env") or {}
            if name in wanted or not (name == backend.name or env.get("namespace") == backend.name):
                continue
            port = str(env.get("PORT") or (env.get("env") or {}).get("PORT") or "")
            strays[str(name)] = int(port) if port.isdigit() else None
        return strays

    def _token_stdin(self) -> bytes:
        return (self.probe_token or "").encode()

    # --- 4. gate ------------------------------------------------------------------------

    def gate(self) -> list[str]:
        """Failures of the health checks through nginx and on each instance (empty: healthy)."""
        if self.dry_run:
            return []
        with self.step("health", "through nginx and on every instance") as s:
            urls = health_urls(self.target)
            result = self.t.run(http_probe(urls, 5, with_token=True), check=False,
                                mutates=False, stdin=self._token_stdin(),
                                what="health checks", timeout=60)
            probes: list[ProbeResult] = parse_probe(result.stdout, urls)
            # A status line and a short reason: never nginx's HTML error page.
            failures = [f"{p.url}: {probe_reason(p.status, p.error)}" for p in probes if not p.ok]
            s.done_message = (f"{len(urls) - len(failures)}/{len(urls)} checks passed"
                              + (": " + "; ".join(failures) if failures else ""))
            s.data = {"failures": failures, "ms": {p.url: p.ms for p in probes}}
            s.failed = bool(failures)
        return failures

    # --- after --------------------------------------------------------------------------

    def finish(self, state: HostState, new: ReleaseInfo, keep: int,
               history: dict[str, Any], *, live: bool, restarted: bool) -> None:
        """One round trip: mark live, prune, save PM2's list, append history, unlock."""
        parts = [rel.append_history(self.layout)]
        if live:
            parts.insert(0, rel.mark_live(self.layout, new.id))
            parts.append(rel.forget_env_backup(self.layout))
            doomed, hashes = prune_plan(state, new, keep)
            if doomed:
                parts.append(rel.remove_releases(self.layout, doomed))
            parts.append(rel.prune_deps(self.layout, hashes))
        parts += self.persistence(restarted)
        if self.lock_token:
            parts.append(rel.release_lock(self.layout, self.lock_token))
        result = self.t.run(" ; ".join(f"( {p} )" for p in parts),
                            stdin=(json.dumps(history) + "\n").encode(), check=False,
                            what="finish (history, prune, unlock)")
        self.warn_startup_failed(result.stdout)
        if result.ok:
            self.lock_token = None

    def persistence(self, restarted: bool) -> list[str]:
        """Commands so that a reboot brings back what runs now (`pm2 save`, `pm2 startup`).

        A production host gets PM2's systemd boot unit (once) and a saved list after
        every deploy; a sandbox only the saved list when instances changed: its boot is
        `adapto sandbox up`, and `pm2 startup` would install a unit on this machine.
        """
        production = self.env.sandbox is None
        parts = [pm2_cmd.save()] if restarted or production else []
        if production:
            parts.append(pm2_cmd.ensure_startup(self.target.host.user))
        return parts

    def warn_startup_failed(self, stdout: str) -> None:
        """A warning when the output of :meth:`persistence`'s commands says `pm2 startup` failed."""
        if pm2_cmd.STARTUP_FAILED in stdout:
            self.reporter.emit(Event("warn", "pm2 startup", "could not install PM2's boot unit; "
                                     f"run `pm2 startup systemd -u {self.target.host.user}` on "
                                     "the host as root, or processes stay down after a reboot",
                                     self.name))


def prune_plan(state: HostState, new: ReleaseInfo, keep: int) -> tuple[list[str], list[str]]:
    """Releases to delete and dependency hashes to keep, after ``new`` went live.

    Kept: the newest ``keep`` complete releases, the live one, and any release
    whose backend a kept release runs from (a frontend-only deploy reuses it).
    Incomplete releases (a cut upload) are dropped.
    """
    releases = [r for r in state.releases if r.id != new.id] + [new]
    complete = sorted(r.id for r in releases if r.complete)
    kept = set(complete[-keep:]) | {new.id}
    kept |= {r.backend_release for r in releases if r.id in kept}
    doomed = [r.id for r in releases if r.id not in kept]
    hashes = sorted({str((r.meta or {}).get("deps_hash")) for r in releases
                     if r.id in kept and (r.meta or {}).get("deps_hash")})
    return doomed, hashes


def health_urls(target: Target) -> list[tuple[str, str]]:
    """(url, TLS server name) of the runbook's checks, as seen from the host itself:
    /api/health and / through nginx over TLS, then /api/health on every instance."""
    env = target.env
    origin = f"https://{probe_address(target)}:{env.nginx.https_port}"
    urls = [(f"{origin}{env.backend.health_path}", env.nginx.canonical_name),
            (f"{origin}/", env.nginx.canonical_name)]
    urls += [(f"http://{_url_host(env.backend.bind)}:{p}{env.backend.health_path}", "")
             for p in env.backend.ports]
    return urls


def lock_holder_is_dead(text: str) -> bool:
    """True only for a lock taken from this machine by a process that no longer exists."""
    try:
        info = json.loads(text)
        who, pid = str(info["who"]), int(info["pid"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return False
    if who.rpartition("@")[2] != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by someone else
    return False


def describe_lock(text: str) -> str:
    try:
        info = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return f"locked ({text.strip()[:120] or 'unreadable lock file'})"
    return (f"locked by {info.get('who', '?')} (pid {info.get('pid', '?')}) since "
            f"{info.get('since', '?')} for `{info.get('command', 'deploy')}`")


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address
