"""nginx control: test, reload or start, for systemd-managed or prefix-run nginx."""

from __future__ import annotations

import shlex

from adapto_ops.inventory.model import Nginx


def _base(nginx: Nginx) -> str:
    if nginx.control == "signal":
        return f"{shlex.quote(nginx.binary)} -p {shlex.quote(nginx.prefix or '')} " \
               f"-c {shlex.quote(nginx.main_config_path)}"
    return shlex.quote(nginx.binary)


def pid_file(nginx: Nginx) -> str:
    return f"{nginx.prefix}/logs/nginx.pid" if nginx.prefix else "/run/nginx.pid"


def test(nginx: Nginx) -> str:
    """`nginx -t` on the whole configuration; output on stderr."""
    return f"{_base(nginx)} -t -q"


def reload(nginx: Nginx) -> str:
    """Graceful reload (old workers finish their requests); starts nginx if it is not running."""
    if nginx.control == "systemd":
        return "systemctl reload nginx || systemctl start nginx"
    pid = shlex.quote(pid_file(nginx))
    return (
        f"if [ -s {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; "
        f"then {_base(nginx)} -s reload; else {_base(nginx)}; fi"
    )


def install_site(nginx: Nginx, staged: str) -> str:
    """Move ``staged`` into place and enable it; if nginx -t fails, put the old file back.

    The live file changes only between two steps that nginx never reads
    (no reload happens here), and a rejected config is undone before exit.
    """
    site, enabled = shlex.quote(nginx.site_config_path), shlex.quote(nginx.site_enabled_path)
    backup = shlex.quote(nginx.site_config_path + ".adapto-prev")
    had_enabled = "had_enabled"
    return "\n".join(
        [
            "set -e",
            f"mkdir -p \"$(dirname {site})\" \"$(dirname {enabled})\"",
            f"if [ -e {site} ]; then cp -p {site} {backup}; had=1; else had=0; fi",
            f"if [ -L {enabled} ] || [ -e {enabled} ]; then {had_enabled}=1; "
            f"else {had_enabled}=0; fi",
            f"mv -f {shlex.quote(staged)} {site}",
            f"ln -sfn {site} {enabled}",
            f"if ! out=$({test(nginx)} 2>&1); then",
            f"  if [ $had = 1 ]; then mv -f {backup} {site}; else rm -f {site}; fi",
            f"  if [ ${had_enabled} = 0 ]; then rm -f {enabled}; fi",
            "  printf '%s\\n' \"$out\" >&2",
            "  exit 3",
            "fi",
            f"rm -f {backup}",
        ]
    )


def start(nginx: Nginx) -> str:
    """Start nginx (it is not running); its own error line on stderr if it cannot."""
    if nginx.control == "systemd":
        return "systemctl start nginx"
    return _base(nginx)


def restart(nginx: Nginx) -> str:
    """Stop nginx (gracefully, waiting up to 10 s for the master to go) and start it again.

    For a master that no longer answers signals or a stale pid file, where a
    reload does not take.
    """
    if nginx.control == "systemd":
        return "systemctl restart nginx"
    pid = shlex.quote(pid_file(nginx))
    return "\n".join([
        f"p=$(cat {pid} 2>/dev/null)",
        'if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then',
        f"  {_base(nginx)} -s quit",
        '  i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
        "fi",
        _base(nginx),
    ])


def restore_site(nginx: Nginx, good_copy: str, keep_rejected: str) -> str:
    """Put ``good_copy`` back as the site file and enable it; the rejected one goes to
    ``keep_rejected`` (outside nginx's include globs) for a person to read.

    Prints SAME when the site file already is that copy (the fault is elsewhere)
    and exits 4 when there is no copy. nginx is neither tested nor reloaded here.
    """
    site, enabled = shlex.quote(nginx.site_config_path), shlex.quote(nginx.site_enabled_path)
    copy = shlex.quote(good_copy)
    kept = shlex.quote(keep_rejected)
    staged = shlex.quote(nginx.site_config_path + ".adapto-new")
    return "\n".join([
        f"if [ ! -s {copy} ]; then echo 'no copy of the last good site config at '{copy} >&2; "
        "exit 4; fi",
        f"if cmp -s {copy} {site} && [ -L {enabled} ]; then echo SAME; exit 0; fi",
        f"if [ -e {site} ]; then mkdir -p \"$(dirname {kept})\" && cp -p {site} {kept}; fi",
        f"mkdir -p \"$(dirname {site})\" \"$(dirname {enabled})\"",
        f"cp {copy} {staged} && mv -f {staged} {site} && ln -sfn {site} {enabled}",
        "echo RESTORED",
    ])
