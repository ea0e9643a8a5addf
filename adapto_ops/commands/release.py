"""Shell commands for the release layout: state, lock, new release, switch, prune, history."""

from __future__ import annotations

import shlex

from adapto_ops.layout import ReleaseLayout

q = shlex.quote
RELEASE_META = ".adapto-release.json"  # inside each release: id, revision, manifest, ...
COMPLETE_MARK = ".adapto-complete"  # written last by prepare: the release is whole
LIVE_MARK = ".adapto-live"  # written once the release passed its health gate

def read_state(layout: ReleaseLayout) -> str:
    """Lines: ``CUR <id>``, ``REL <id> <complete> <live> <meta JSON>`` per release, then
    ``LOCK`` and the lock file's text (tab-separated; parsed by deploy.state.parse_state).

    Plain sh, not node: node starts in 50-60 ms (several times that on a busy
    host) and this runs at the start of every deploy. Manifests are large, so
    only the current release's meta keeps its manifest (the one a deploy diffs
    against); the others lose it with sed (it is the meta's last key). A meta
    whose manifest the expression does not match is sent whole: larger, never wrong.
    """
    root = q(layout.root)
    return (
        f'r={root}; cur=$(readlink "$r/current" 2>/dev/null); cur=${{cur##*/}}; '
        "printf 'CUR\\t%s\\n' \"$cur\"; "
        'for d in "$r"/releases/*; do [ -d "$d" ] || continue; id=${d##*/}; '
        f'c=0; [ -e "$d/{COMPLETE_MARK}" ] && c=1; l=0; [ -e "$d/{LIVE_MARK}" ] && l=1; '
        "printf 'REL\\t%s\\t%s\\t%s\\t' \"$id\" \"$c\" \"$l\"; "
        f'if [ "$id" = "$cur" ]; then cat "$d/{RELEASE_META}" 2>/dev/null; '
        f"else sed 's/, \"manifest\": {{[^}}]*}}}}$/}}/' \"$d/{RELEASE_META}\" 2>/dev/null; fi "
        "| tr -d '\\n'; printf '\\n'; done; "
        "printf 'LOCK\\n'; cat \"$r/.adapto/lock\" 2>/dev/null; true"
    )


def lock_and_read_state(layout: ReleaseLayout, *, break_first: bool) -> str:
    """Take the lock (O_EXCL via noclobber; info on stdin), then print the state: one trip.

    Exit code 75 and the holder's lock text when someone else has it.
    """
    lock = q(layout.lock)
    breaking = f"rm -f {lock}; " if break_first else ""
    return (
        f"{breaking}mkdir -p {q(layout.state_dir)} && "
        f"{{ ( set -C; cat > {lock} ) 2>/dev/null || {{ cat {lock}; exit 75; }}; }}"
        f" && {read_state(layout)}"
    )


def release_lock(layout: ReleaseLayout, token: str) -> str:
    """Remove the lock only if it is still ours (a broken-and-retaken lock is not)."""
    return f"grep -qF {q(token)} {q(layout.lock)} 2>/dev/null && rm -f {q(layout.lock)} || true"



def apply_bundle(layout: ReleaseLayout, release_id: str, previous: str | None, *,
                 link_backend: bool, deps_hash: str | None, deps_dir: str,
                 finish: bool, backend_from: str | None = None) -> str:
    """One round trip: new release folder, changed files from the tarball on stdin, deletions.

    The new release starts as hard links of the previous one (no space, no
    transfer); files that change are replaced by tar --unlink-first, never
    written through, so the previous release stays intact. A backend with a
    build step gets a real copy instead, because builds rewrite files in place.
    ``backend_from``: a release built from the same inputs (the build cache);
    the backend is a real copy of that release's, build output included.
    Prints READY when dependencies for ``deps_hash`` exist (they are linked and,
    with ``finish``, the release is marked complete), NEEDS_DEPS otherwise.
    """
    new = q(layout.release(release_id))
    lines = [
        "set -e",
        f"mkdir -p {q(layout.releases)} {q(layout.log_dir)} {q(layout.state_dir)} "
        f"{q(layout.shared + '/deps')}",
        f"rm -rf {new}",
    ]
    if previous:
        prev = q(layout.release(previous))
        lines.append(f"mkdir -p {new}")
        lines.append(f"cp -al {prev}/dist {new}/dist 2>/dev/null || mkdir -p {new}/dist")
    else:
        lines.append(f"mkdir -p {new}/dist")
    if backend_from:
        # Same sources as ours, so the tarball's backend files rewrite them unchanged.
        lines.append(f"cp -a {q(layout.release(backend_from))}/backend {new}/backend")
    elif previous:
        copy = "cp -al" if link_backend else "cp -a"
        lines.append(f"{copy} {prev}/backend {new}/backend 2>/dev/null || mkdir -p {new}/backend")
    else:
        lines.append(f"mkdir -p {new}/backend")
    lines += [
        f"tar -xzf - --unlink-first --no-same-owner -C {q(layout.root)}",
        f"if [ -f {new}/{DELETE_LIST} ]; then",
        f"  (cd {new} && xargs -0 -r rm -f -- < {DELETE_LIST})",
        f"  rm -f {new}/{DELETE_LIST}",
        "fi",
    ]
    if deps_hash:
        ready = q(f"{layout.shared}/deps/{deps_hash}/.adapto-ready")
        lines += [f"if [ ! -e {ready} ]; then echo NEEDS_DEPS; exit 0; fi",
                  link_shared(layout, release_id, deps_hash, deps_dir)]
    if finish:
        lines.append(f"touch {new}/{COMPLETE_MARK}")
    lines.append("echo READY")
    return "\n".join(lines)


DELETE_LIST = ".adapto-delete"


def staged_env(layout: ReleaseLayout, release_id: str) -> str:
    """Where a release's env file waits until the switch (an aborted deploy leaves .env as is)."""
    return f"{layout.shared}/.env.next-{release_id}"


def link_shared(layout: ReleaseLayout, release_id: str, deps_hash: str, deps_dir: str) -> str:
    """The release's backend gets the shared .env and the dependency folder for its hash."""
    backend = layout.release(release_id) + "/backend"
    deps = f"{layout.shared}/deps/{deps_hash}/{deps_dir}"
    return "\n".join(
        [
            f"mkdir -p {q(backend)}",
            f"ln -sfn {q(layout.env_file)} {q(backend + '/.env')}",
            f"rm -rf {q(backend + '/' + deps_dir)}",
            f"ln -sfn {q(deps)} {q(backend + '/' + deps_dir)}",
        ]
    )


def install_deps(
    layout: ReleaseLayout, release_id: str, deps_hash: str, files: list[str], install: str
) -> str:
    """Install dependencies once per content hash, in their final folder (venvs don't move)."""
    target = f"{layout.shared}/deps/{deps_hash}"
    backend = layout.release(release_id) + "/backend"
    copies = [
        f"if [ -e {q(backend + '/' + f)} ]; then cp -p {q(backend + '/' + f)} {q(target)}/; fi"
        for f in files
    ]
    return "\n".join(
        [
            "set -e",
            f"rm -rf {q(target)}",
            f"mkdir -p {q(target)}",
            *copies,
            f"cd {q(target)}",
            f"if ! ( {install} ); then cd /; rm -rf {q(target)}; exit 1; fi",
            "touch .adapto-ready",
        ]
    )


def run_in(directory: str, command: str) -> str:
    return f"cd {q(directory)} && ( {command} )"


def mark_complete(layout: ReleaseLayout, release_id: str) -> str:
    return f"touch {q(layout.release(release_id) + '/' + COMPLETE_MARK)}"


def drop_release(layout: ReleaseLayout, release_id: str) -> str:
    """Undo a release that never went live: its folder and its staged env file."""
    return f"rm -rf {q(layout.release(release_id))} {q(staged_env(layout, release_id))}"


def env_backup(layout: ReleaseLayout) -> str:
    """The .env a deploy replaced, kept until it goes live (a failed gate puts it back)."""
    return f"{layout.env_file}.adapto-prev"


def switch(layout: ReleaseLayout, release_id: str) -> str:
    """Install the release's env file, then point `current` at it with one rename(2).

    The .env it replaces stays as a hard link (same inode: same 0600 mode and owner,
    nothing copied) until :func:`restore_env` or :func:`forget_env_backup`.
    """
    tmp = layout.current + ".adapto-tmp"
    env, file, backup = q(staged_env(layout, release_id)), q(layout.env_file), q(env_backup(layout))
    return (
        f"if [ -e {env} ]; then {{ [ ! -e {file} ] || ln -f {file} {backup}; }} && "
        f"mv -f {env} {file}; fi && "
        f"ln -sfn {q('releases/' + release_id)} {q(tmp)} && mv -fT {q(tmp)} {q(layout.current)}"
    )


def restore_env(layout: ReleaseLayout) -> str:
    """Put back the .env the failed deploy replaced (its secrets are what the old release ran)."""
    backup, file = q(env_backup(layout)), q(layout.env_file)
    return f"if [ -e {backup} ]; then mv -f {backup} {file}; fi"


def forget_env_backup(layout: ReleaseLayout) -> str:
    """Drop the replaced .env once the new release is live: old secrets do not linger."""
    return f"rm -f {q(env_backup(layout))}"


def remove_releases(layout: ReleaseLayout, release_ids: list[str]) -> str:
    paths = " ".join(q(layout.release(r)) for r in release_ids)
    return f"rm -rf {paths}"


def prune_deps(layout: ReleaseLayout, keep_hashes: list[str]) -> str:
    """Remove dependency folders no kept release uses."""
    deps = q(layout.shared + "/deps")
    keep = " ".join(q(h) for h in keep_hashes) or "''"
    return (
        f"[ -d {deps} ] || exit 0; cd {deps} && for d in *; do [ -d \"$d\" ] || continue; "
        f"case \" {keep} \" in *\" $d \"*) ;; *) rm -rf \"$d\" ;; esac; done"
    )


def append_history(layout: ReleaseLayout) -> str:
    """Append stdin (one JSON line) to the history file."""
    return f"mkdir -p {q(layout.state_dir)} && cat >> {q(layout.history)}"


def read_history(layout: ReleaseLayout, lines: int = 200) -> str:
    return f"tail -n {int(lines)} {q(layout.history)} 2>/dev/null || true"


def mark_live(layout: ReleaseLayout, release_id: str) -> str:
    return f"touch {q(layout.release(release_id) + '/' + LIVE_MARK)}"
