"""Shell commands for the backend's database migrations (pure: strings only).

The migrate command (``backend.migrate`` in the inventory) runs in a release's
backend folder with the variables of an env file, exactly as PM2 gives them to
the backend: the file is parsed by the same rules as the ecosystem file's
reader, never sourced by a shell, so a value with ``$`` or quotes arrives as
written and no secret appears on a command line.
"""

from __future__ import annotations

import shlex

q = shlex.quote

# argv: env file, command. Runs `sh -c command` with the file's variables added to
# the session's environment; exits with the command's code (1 when it was killed).
WITH_ENV_JS = r"""
const fs = require('fs'), cp = require('child_process');
const [file, command] = process.argv.slice(1);
const env = Object.assign({}, process.env);
let text = '';
try { text = fs.readFileSync(file, 'utf8'); }
catch (err) { console.error(`migrate: cannot read ${file}: ${err.code}`); process.exit(2); }
for (const raw of text.split(/\r?\n/)) {
  const line = raw.trim();
  if (!line || line.startsWith('#') || !line.includes('=')) continue;
  const at = line.indexOf('=');
  const key = line.slice(0, at).replace(/^export\s+/, '').trim();
  let value = line.slice(at + 1).trim();
  if (value.length >= 2 && value[0] === "'" && value.at(-1) === "'") value = value.slice(1, -1);
  else if (value.length >= 2 && value[0] === '"' && value.at(-1) === '"') {
    const escapes = {n: '\n', r: '\r'};
    value = value.slice(1, -1).replace(/\\(n|r|"|\\)/g, (_, c) => escapes[c] || c);
  }
  env[key] = value;
}
const run = cp.spawnSync('sh', ['-c', command], {stdio: 'inherit', env});
process.exit(run.status === null ? 1 : run.status);
"""

# One line: a dry run prints the command, and twenty lines of script would drown it.
_ONE_LINE_JS = " ".join(line.strip() for line in WITH_ENV_JS.strip().splitlines())


def migrate(backend_dir: str, env_file: str, command: str, *, status: bool = False) -> str:
    """``command`` (``--status`` appended with ``status``) in ``backend_dir`` with ``env_file``."""
    full = f"{command} --status" if status else command
    return f"cd {q(backend_dir)} && node -e {q(_ONE_LINE_JS)} {q(env_file)} {q(full)}"


def parse_status(stdout: str) -> tuple[list[str], int | None]:
    """(pending migration names, total) from `--status` output: `pending NAME` lines and
    `N pending of M`; any other line is ignored (total None when the summary is missing)."""
    pending, total = [], None
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "pending":
            pending.append(words[1])
        elif len(words) == 4 and words[1:3] == ["pending", "of"] and words[3].isdigit():
            total = int(words[3])
    return pending, total
