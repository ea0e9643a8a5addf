"""Secret values: from the process environment first, then an untracked dotenv file.

Values live only in memory and in the files we write with mode 0600; anything
printed goes through :func:`mask`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapto_ops.errors import SecretError


@dataclass(frozen=True)
class SecretValues:
    """The secrets an environment names, those we found and those we did not."""

    values: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    source_file: Path | None = None

    def require_all(self, env_name: str) -> None:
        """Fail with one line naming every missing secret and where to put it."""
        if not self.missing:
            return
        where = f" or add them to {self.source_file}" if self.source_file else ""
        raise SecretError(
            f"environment {env_name!r}: secret(s) not set: {', '.join(self.missing)}; "
            f"export them{where}"
        )


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional `export ` and matching quotes."""
    values: dict[str, str] = {}
    # Split on newlines only: str.splitlines() would also break inside a value at
    # \r, \x0b, \x1c or \u2028, which dotenv and PM2's reader keep.
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = _unquote(value.strip())
    return values


_ESCAPES = {"n": "\n", "r": "\r"}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\(n|r|"|\\)', lambda m: _ESCAPES.get(m[1], m[1]), value[1:-1])
    return value


def dotenv_quote(value: str) -> str:
    """A value as a dotenv line writes it: bare when safe, else double-quoted with escapes."""
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,-]*", value):
        return value
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r"))
    return f'"{escaped}"'


def resolve_secrets(
    names: list[str], secrets_file: Path | None, environ: Mapping[str, str] | None = None
) -> SecretValues:
    """Look every name up in ``environ`` (default: os.environ), then in ``secrets_file``."""
    environ = os.environ if environ is None else environ
    from_file: dict[str, str] = {}
    if secrets_file is not None and secrets_file.is_file():
        from_file = parse_dotenv(secrets_file.read_text(encoding="utf-8"))
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        if environ.get(name):
            values[name] = environ[name]
        elif from_file.get(name):
            values[name] = from_file[name]
        else:
            missing.append(name)
    return SecretValues(values=values, missing=missing, source_file=secrets_file)


def mask(value: str) -> str:
    """What may be shown of a secret: its length only."""
    return f"****({len(value)} chars)" if value else "****"


def set_secret(path: Path, name: str, value: str) -> bool:
    """Put ``name=value`` into the dotenv ``path``, keeping every other line; True if new.

    The file is rewritten atomically (a temporary file in the same folder, renamed
    over it) and created 0600 from the start (``mkstemp``), so no reader ever sees a
    half-written file or a moment where it is group- or world-readable. A name set
    several times keeps one line, where the first was.
    """
    path = path.resolve()  # a symlinked secrets file is updated where it really is
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    line = f"{name}={dotenv_quote(value)}"
    lines: list[str] = []
    replaced = False
    for raw in text.split("\n"):
        key = raw.strip().removeprefix("export ").partition("=")[0].strip()
        if "=" in raw and key == name and not raw.lstrip().startswith("#"):
            if not replaced:
                lines.append(line)
            replaced = True
            continue
        lines.append(raw)
    while lines and lines[-1] == "":
        lines.pop()
    if not replaced:
        lines.append(line)
    _write_private(path, "\n".join(lines) + "\n")
    return not replaced


def _write_private(path: Path, text: str) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: 0600 already
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def secrets_file_warning(path: Path) -> str | None:
    """One line when the secrets file can be read by its group or others; else None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        return (f"{path}: mode {mode:04o} lets {'others' if mode & 0o007 else 'its group'} read "
                f"the secrets; run: chmod 600 {path}")
    return None


# A password shorter than this is not masked on its own: it would mask ordinary words.
MIN_MASKED_PART = 8


def maskable_values(values: Iterable[str]) -> list[str]:
    """The values to mask: each secret, and the password inside a URL-valued one.

    A driver or a log line may show a database URL's password alone (``password=…``
    in a key/value DSN, a connection string split in fields), not the URL whole.
    Longest first, so a value that contains another is masked whole.
    """
    from urllib.parse import unquote, urlsplit

    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        try:
            password = urlsplit(value).password if "://" in value else None
        except ValueError:
            password = None
        for part in (password, unquote(password or "")):
            if part and len(part) >= MIN_MASKED_PART:
                found.add(part)
    return sorted(found, key=len, reverse=True)
