"""The one read-only command that reports a host's state (DESIGN §3, "facts").

It prints sections, each headed by a line ``@@<name>``, in one SSH round
trip: the PM2 daemon and its processes, nginx (running, ``nginx -t``), the
current release, the certificate's dates, free disk under the root, ufw (state,
rules, default policies) and the SSH port this session came in on,
who listens on the backend ports, PM2's boot persistence and the last
history line. :mod:`adapto_ops.facts` parses it.

`pm2 jlist` carries every process's environment, secrets included, and may
start with warning text. It is reduced on the host itself, by node, to the
fields adapto uses, so no secret crosses the wire or reaches an error line.
`pm2 jlist` is only run when the daemon is alive: the PM2 CLI would start a
fresh, empty daemon otherwise, and a read must not change the host.
"""

from __future__ import annotations

import shlex

from adapto_ops.commands import firewall as firewall_cmd
from adapto_ops.commands import nginx as nginx_cmd
from adapto_ops.inventory.model import Environment

q = shlex.quote

# Reads `pm2 jlist` on stdin; prints one JSON array of safe fields, or {"error": ...}.
PM2_REDUCE_JS = r"""
let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { text += d; });
process.stdin.on('end', () => {
  const line = text.split('\n').reverse().find((l) => l.trim().startsWith('['));
  let apps;
  try { apps = JSON.parse(line); } catch (e) {
    const words = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('['));
    console.log(JSON.stringify({error: (words.pop() || 'pm2 jlist gave no list').slice(0, 200)}));
    return;
  }
  const now = Date.now();
  console.log(JSON.stringify(apps.map((a) => {
    const e = a.pm2_env || {};
    const port = String(e.PORT || (e.env || {}).PORT || '');
    return {
      name: a.name, pid: a.pid || null, pm_id: a.pm_id, status: e.status || 'unknown',
      namespace: e.namespace || null, restarts: e.restart_time || 0,
      unstable_restarts: e.unstable_restarts || 0,
      uptime_s: e.status === 'online' && e.pm_uptime ? (now - e.pm_uptime) / 1000 : null,
      cpu: (a.monit || {}).cpu ?? null, memory: (a.monit || {}).memory ?? null,
      port: /^\d+$/.test(port) ? Number(port) : null, cwd: e.pm_cwd || null,
    };
  })));
});
"""

# The current release's id, creation time and revision (its manifest is large: not sent).
RELEASE_JS = r"""
const fs = require('fs'), path = require('path');
const root = process.argv[1];
let id = null, meta = {};
try { id = path.basename(fs.readlinkSync(path.join(root, 'current'))); } catch (e) {}
if (id) {
  try { meta = JSON.parse(fs.readFileSync(path.join(root, 'releases', id,
                                                    '.adapto-release.json'), 'utf8')); }
  catch (e) {}
}
console.log(JSON.stringify({id, created: meta.created || null, revision: meta.revision || null,
                            backend_release: meta.backend_release || id}));
"""

LISTENER_SH = (
    'line=$(ss -Hltnp "sport = :$p" 2>/dev/null | head -n 1); [ -n "$line" ] || continue; '
    "pid=$(printf '%s' \"$line\" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2); "
    'a=$pid; chain=; while [ -n "$a" ] && [ "$a" -gt 1 ] 2>/dev/null; do chain="$chain,$a"; '
    "a=$(sed 's/.*) //' /proc/$a/stat 2>/dev/null | cut -d' ' -f2); done; "
    'cmd=; [ -n "$pid" ] && '
    "cmd=$(tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-200); "
    'c=${chain#,}; echo "$p ${pid:--} ${c:--} $cmd"'
)

SECTIONS = ("pm2_daemon", "pm2", "pm2_startup", "nginx_running", "nginx_test", "release",
            "certificate", "disk", "ufw", "ufw_added", "ufw_defaults", "ssh_port", "listeners",
            "history", "probe", "database", "updates")


def pm2_home() -> str:
    """PM2's home as the remote shell sees it (the sandbox sets PM2_HOME through sshd)."""
    return '"${PM2_HOME:-$HOME/.pm2}"'


def running(pid_file: str) -> str:
    """Exit 0 when the pid in ``pid_file`` runs: not gone, and not a zombie.

    A process killed a moment ago stays a zombie until its parent reaps it, and
    `kill -0` succeeds on a zombie; reading it as alive would let the PM2 CLI
    quietly launch a fresh, empty daemon.
    """
    return (f'[ -s {pid_file} ] && kill -0 "$(cat {pid_file})" 2>/dev/null && '
            f'[ "$(sed \'s/.*) //\' "/proc/$(cat {pid_file})/stat" 2>/dev/null | cut -c1)" '
            '!= Z ]')


def pm2_daemon_alive() -> str:
    """Exit 0 when the PM2 daemon of this user (or PM2_HOME) is running."""
    return running(f"{pm2_home()}/pm2.pid")


def pm2_processes() -> str:
    """`pm2 jlist` reduced on the host to safe fields (never the environment)."""
    return f"pm2 jlist 2>&1 | node -e {q(PM2_REDUCE_JS)}"


# Pending upgrades as apt lists them (`apt list --upgradable`: reads the package lists
# and dpkg's status, no lock, no change; a third of `apt-get -s upgrade`'s CPU), and
# when the lists were last refreshed (a stale list hides new updates).
UPDATES_SH = (
    "if command -v apt >/dev/null 2>&1; then "
    "echo \"lists=$(stat -c %Y /var/lib/apt/lists 2>/dev/null)\"; "
    "__adapto_apt=$(LC_ALL=C timeout 120 apt list --upgradable 2>/dev/null); "
    "__adapto_code=$?; echo \"exit=$__adapto_code\"; "
    "[ \"$__adapto_code\" = 0 ] || "
    "printf 'error=%s\\n' \"$(printf '%s' \"$__adapto_apt\" | tail -n 1)\"; "
    "printf '%s\\n' \"$__adapto_apt\" | grep 'upgradable from' | head -n 5000; "
    "else echo no-apt; fi"
)


def updates() -> str:
    """The optional ``updates`` section: pending OS upgrades (only `audit` asks for it)."""
    return f"echo @@updates\n{UPDATES_SH}"


def gather(env: Environment, user: str, probe: str | None = None,
           database: str | None = None, with_updates: bool = False) -> str:
    """The whole read, one section after another; every part tolerates failure.

    ``probe`` (e.g. the instance health probes) runs in the background while the
    facts are read, and its output becomes the ``probe`` section: `health` gets
    both in one round trip and the time of the slower, not of the two added up.
    It alone gets the command's stdin (the probe token); the reads get /dev/null.
    ``database`` (the on-host database check, :mod:`adapto_ops.commands.dbscript`)
    runs in the background too, after the probe, into the ``database`` section.
    ``with_updates`` adds the ``updates`` section (apt's simulated upgrade: seconds,
    so only `audit` pays for it).
    """
    nginx = env.nginx
    root = env.paths.root
    pid = q(nginx_cmd.pid_file(nginx))
    cert = q(nginx.certificate_path)
    ports = " ".join(str(p) for p in env.backend.ports)
    reads = "\n".join([
        "echo @@pm2_daemon",
        f"if {pm2_daemon_alive()}; then echo yes; else echo no; fi",
        "echo @@pm2",
        f"if {pm2_daemon_alive()}; then {pm2_processes()}; else echo null; fi",
        "echo @@pm2_startup",
        f"if [ -e {pm2_home()}/dump.pm2 ]; then echo saved=yes; else echo saved=no; fi",
        "if command -v systemctl >/dev/null 2>&1; then "
        f"echo unit=$(systemctl is-enabled pm2-{q(user)} 2>/dev/null || echo missing); "
        "else echo unit=no-systemd; fi",
        "echo @@nginx_running",
        f"if {running(pid)}; then cat {pid}; else echo no; fi",
        "echo @@nginx_test",
        f"{nginx_cmd.test(nginx)} 2>&1; echo \"exit=$?\"",
        "echo @@release",
        f"node -e {q(RELEASE_JS)} {q(root)} 2>/dev/null || echo '{{}}'",
        "echo @@certificate",
        f"openssl x509 -noout -enddate -subject -in {cert} 2>&1 | head -n 3",
        "echo @@disk",
        f"d={q(root)}; while [ ! -e \"$d\" ]; do d=$(dirname \"$d\"); done; "
        "df -Pk \"$d\" | tail -n 1",
        *firewall_cmd.read_commands(user),
        "echo @@listeners",
        # "<port> <pid> <pid,parent,...> <command line>" per backend port somebody listens on.
        f"for p in {ports}; do " + LISTENER_SH + "; done",
        "echo @@history",
        f"tail -n 1 {q(root + '/.adapto/history.jsonl')} 2>/dev/null",
        *([updates()] if with_updates else []),
    ])
    if probe is None and database is None:
        return f"{reads}\necho @@end"
    lines = ["__adapto_probe=$(mktemp)", "__adapto_db=$(mktemp)"]
    # The database check's script comes on its own stdin (a heredoc inside ``database``).
    # It starts once the probe is done: a python starting up beside the probe would
    # slow the very answers the probe times.
    db_job = f"{{ {database}\n}} > \"$__adapto_db\" 2>/dev/null" if database else ""
    if probe is not None:
        # sh gives a background job /dev/null as stdin before its own redirections,
        # so `<&0` would not do: stdin goes through fd 3.
        then_db = f"\n{db_job}" if db_job else ""
        lines += ["exec 3<&0",
                  f"{{ {{ {probe}\n}} <&3 3<&- > \"$__adapto_probe\" 2>&1{then_db}\n}} &",
                  "exec 3<&-"]
    elif db_job:
        lines.append(f"{db_job} &")
    lines += [f"{{ {reads}\n}} < /dev/null", "wait"]
    # `echo` after each: output without a final newline must not swallow the next header.
    if probe is not None:
        lines += ["echo @@probe", 'cat "$__adapto_probe"; echo']
    if database is not None:
        lines += ["echo @@database", 'cat "$__adapto_db"; echo']
    return "\n".join([*lines, 'rm -f "$__adapto_probe" "$__adapto_db"', "echo @@end"])


# The names set (non-empty value) in a dotenv file, one a line; the values stay on the host.
ENV_NAMES_AWK = r"""
{ sub(/^[ \t]+/, ""); sub(/^export[ \t]+/, ""); i = index($0, "=");
  if (i < 2) next;
  k = substr($0, 1, i - 1); v = substr($0, i + 1);
  sub(/[ \t]+$/, "", k); sub(/^[ \t]+/, "", v); sub(/[ \t\r]+$/, "", v);
  if (k !~ /^[A-Za-z_][A-Za-z0-9_]*$/) next;
  if (v == "" || v == "\"\"" || v == "''") next;
  print "name=" k }
"""


def env_file_names(env_file: str) -> str:
    """Whether ``env_file`` exists, its mode and owner, and the names it sets (never values).

    Prints ``absent``, or ``stat=<octal mode> <owner>`` then ``name=NAME`` lines
    (``unreadable`` when it cannot be read). The parse happens on the host, so
    no value crosses the wire.
    """
    f = q(env_file)
    return (f"if [ ! -e {f} ]; then echo absent; else "
            f"echo \"stat=$(stat -L -c '%a %U' {f} 2>/dev/null)\"; "
            f"if [ -r {f} ]; then awk {q(ENV_NAMES_AWK)} {f}; else echo unreadable; fi; fi")
