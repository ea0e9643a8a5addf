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
Rollback runs 3 again with the previous release. The restarts and the gate
live in :mod:`adapto_ops.deploy.restart`; the state read in
:mod:`adapto_ops.deploy.state`.

Each step is one SSH round trip where it can be: on loopback a round trip
costs ~50 ms, and a no-change deploy is mostly round trips.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.commands import release as rel
from adapto_ops.deploy.artifacts import Artifacts
from adapto_ops.deploy.backend_build import build_key, cached_build
from adapto_ops.deploy.manifest import (
    Manifest,
    carried_assets,
    from_json,
    plan_upload,
    tarball,
    to_json,
)
from adapto_ops.deploy.restart import RestartMixin
from adapto_ops.deploy.state import (
    ECOSYSTEM,
    NGINX_COPY,
    HostState,
    LockHeld,
    Prepared,
    ReleaseInfo,
    content_hash,
    describe_lock,
    dist_hash,
    lock_holder_is_dead,
    parse_state,
    prune_plan,
)
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.events import Event, Reporter
from adapto_ops.remote import CommandFailed, Transport
from adapto_ops.render.configs import RenderedFile, Target, render_nginx, render_pm2


class HostDeployer(RestartMixin):
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
        has_build = restart_backend and bool(self.env.backend.build)
        key = cached = None
        if has_build:
            key = build_key(manifest, deps_hash, str(self.env.backend.build),
                            self._node_version(), env_file.text)
            cached = cached_build(state, key)
        # A backend hard-linked from the previous release keeps that release's build.
        kept_key = prev_meta.get("build_key") if not has_build else None

        meta = {
            "id": release_id, "revision": artifacts.revision, "deployer": artifacts.deployer,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "components": list(artifacts.components), "backend_release": backend_release,
            "deps_hash": deps_hash, "carried": carried, "content_hash": identity,
            "dist_hash": dist_hash(manifest), "backend_hash": backend_identity,
            "build_key": key if has_build else kept_key, "build_from": cached,
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
        with self.step("upload", f"{len(plan.send)} changed, {plan.unchanged} unchanged") as s:
            blob = tarball(plan.send, artifacts.sources, manifest, prefix=base, extra=generated)
            result = self.t.run(
                rel.apply_bundle(self.layout, release_id, previous.id if previous else None,
                                 link_backend=not has_build, deps_hash=deps_hash,
                                 deps_dir=dep_dir, finish=not has_build or bool(cached),
                                 backend_from=cached),
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
        if has_build and cached:
            # The copy made by apply_bundle already holds that release's build output.
            self.reporter.emit(Event("ok", "build", f"cached (key {key}, from release "
                                     f"{cached})", self.name, {"key": key, "from": cached}))
        elif has_build:
            with self.step("build", f"backend: {self.env.backend.build} (key {key})"):
                self.t.run(rel.run_in(release_dir + "/backend", self.env.backend.build),
                           timeout=1800, what="backend build")
        if "NEEDS_DEPS" in result.stdout or (has_build and not cached):
            self.t.run(rel.mark_complete(self.layout, release_id), what="mark release complete")
        return Prepared(release_id, previous, plan, len(blob), restart_backend, backend_release,
                        nginx_file, {env_file.path: env_file.shown, ecosystem.path: ecosystem.text},
                        deps_hash=deps_hash, env_text=env_file.text,
                        dist_changed=previous is None or any(
                            p.startswith("dist/") for p in plan.send + plan.delete))

    def _node_version(self) -> str | None:
        """`node --version` on the host (the build cache's key): one round trip, only
        when the backend is about to be built."""
        result = self.t.run("node --version", check=False, mutates=False,
                            what="node version (build cache key)")
        version = result.stdout.strip() if result.ok else ""
        return version or None

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

        Only a changed site config needs the reload: nginx reads index.html and
        assets/ through `current` on every request (open_file_cache is off
        there), so a new frontend is served at once.
        A reload closes idle client keep-alive connections, and a request racing
        that close fails: under load ~1-3 requests per reload for clients that
        do not resend (benchmarks/deploy_traffic.py).
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

