"""Load inventory.yaml once, validate all of it, and explain every problem in one line.

YAML is composed into nodes first so that each value keeps the line it came
from; pydantic then validates the plain data, and every error location it
reports is walked back through the node tree to a line number. Problems that
span several fields (a secret used but never declared, two hosts with one
name) are checked afterwards by :func:`semantic_problems`, with the same
line mapping.
"""

from __future__ import annotations

import difflib
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from adapto_ops.errors import InventoryError
from adapto_ops.inventory.limits import (
    MAX_BYTES,
    BoundedLoader,
    LimitExceeded,
    line_at_byte_limit,
)
from adapto_ops.inventory.model import Environment, Inventory

DEFAULT_PATH = "inventory.yaml"
ENV_VAR = "ADAPTO_INVENTORY"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the inventory: where, what, and how to fix it."""

    loc: Loc
    message: str
    hint: str = ""
    line: int | None = None  # when known better than the path's first occurrence


@dataclass(frozen=True)
class LoadedInventory:
    """A validated inventory and the file it came from (relative paths resolve against it)."""

    inventory: Inventory
    path: Path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def environment(self, name: str) -> Environment:
        try:
            return self.inventory.environments[name]
        except KeyError:
            known = ", ".join(self.inventory.environments) or "none"
            raise InventoryError(
                f"{self.path}: no environment {name!r} (defined: {known}); "
                f"pick one with -e NAME"
            ) from None

    def resolve(self, relative: str) -> Path:
        """A local path from the inventory, relative to the inventory file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()


PACKAGE_DIR = Path(__file__).resolve().parent.parent


def bundled_inventory() -> Path | None:
    """The platform's inventory shipped with adapto (in the wheel, or the checkout's)."""
    for candidate in (PACKAGE_DIR / DEFAULT_PATH, PACKAGE_DIR.parent / DEFAULT_PATH):
        if candidate.is_file():
            return candidate
    return None


def inventory_path(option: str | None) -> Path:
    """-i/--inventory, else $ADAPTO_INVENTORY, else ./inventory.yaml, else the bundled one.

    adapto exists for one platform, whose inventory ships with it: run from a
    directory without an inventory, commands use that one and say so on stderr.
    """
    chosen = option or os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen)
    local = Path(DEFAULT_PATH)
    bundled = bundled_inventory()
    if not local.exists() and bundled is not None:
        print(f"note: no ./{DEFAULT_PATH} here; using the platform inventory shipped with "
              f"adapto ({bundled}); pass -i PATH for another", file=sys.stderr)
        return bundled
    return local


def load_inventory(path: Path) -> LoadedInventory:
    """Parse and validate ``path``; raise InventoryError listing every problem."""
    try:
        # Refuse a huge file before reading it: the bound is on work, not only on YAML.
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise InventoryError(_too_large(path, raw.count(b"\n", 0, MAX_BYTES) + 1))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InventoryError(
            f"{path}: inventory file not found; create one with `adapto init` "
            f"or point at it with -i PATH (or ${ENV_VAR})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InventoryError(f"{path}: cannot read the inventory: {reason}; point -i (or "
                             f"${ENV_VAR}) at the inventory file") from None
    loaded = parse_inventory(text, path)
    if any(env.sandbox for env in loaded.inventory.environments.values()):
        # `sandbox up --hosts N` may have derived more rehearsal hosts than the file declares.
        from adapto_ops.inventory.derived import with_derived_hosts

        inventory = with_derived_hosts(loaded.inventory, loaded.base_dir, str(loaded.path))
        if inventory is not loaded.inventory:
            loaded = LoadedInventory(inventory=inventory, path=loaded.path)
    return loaded


def parse_inventory(text: str, path: Path) -> LoadedInventory:
    """Validate inventory text; ``path`` names it in messages and anchors relative paths."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8")) > MAX_BYTES:
        raise InventoryError(_too_large(path, line_at_byte_limit(text)))
    root, data = _compose(text, path)
    if not isinstance(data, dict):
        raise InventoryError(
            f"{path}:{line_of(root, ())}: "
            "the inventory must be a mapping with `project:` and `environments:`"
        )
    problems: list[Problem] = _duplicate_keys(root)
    inventory: Inventory | None = None
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        problems += [_from_pydantic(err) for err in exc.errors()]
    if inventory is not None:
        problems += semantic_problems(inventory)
    if problems:
        lines = [_format(path, root, p) for p in problems]
        raise InventoryError(lines[0], details=lines)
    assert inventory is not None
    return LoadedInventory(inventory=inventory, path=path.resolve())


def _too_large(path: Path, line: int) -> str:
    return (f"{path}:{line}: the inventory passes {MAX_BYTES // 1024} KiB here; "
            "refused (inventory reader limits: a real one is a few KiB)")


# --- YAML with line numbers -------------------------------------------------


def _compose(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    try:
        # The reader checks characters as soon as it is made: keep it inside the try.
        loader = BoundedLoader(text)
    except yaml.reader.ReaderError as exc:
        raise InventoryError(_reader_error(path, text, exc)) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except LimitExceeded as exc:
        raise InventoryError(
            f"{path}:{exc.line}: {exc.message}; refused (inventory reader limits)") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or str(exc)
        raise InventoryError(
            f"{path}:{line}: YAML syntax error: {what}; check indentation and quoting there"
        ) from None
    except yaml.reader.ReaderError as exc:
        raise InventoryError(_reader_error(path, text, exc)) from None
    except yaml.YAMLError as exc:
        one_line = " ".join(str(exc).split())
        raise InventoryError(f"{path}: YAML error: {one_line}") from None
    finally:
        loader.dispose()
    return node, data


def _reader_error(path: Path, text: str, exc: yaml.reader.ReaderError) -> str:
    line = text[: exc.position].count("\n") + 1
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
    return (f"{path}:{line}: character U+{char:04X} is not allowed in YAML, quoted "
            "or not; delete it (inside double quotes an escape such as \\x07 is allowed)")


def _duplicate_keys(node: yaml.Node | None, loc: Loc = ()) -> list[Problem]:
    """PyYAML keeps the last of two equal keys silently; an operator wants to know."""
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                problems.append(
                    Problem(loc + (name,), "appears twice in the same mapping", "keep one",
                            line=key.start_mark.line + 1)
                )
            seen.add(name)
            problems += _duplicate_keys(value, loc + (name,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, loc + (index,))
    return problems


def line_of(root: yaml.Node | None, loc: Loc) -> int:
    """The line (1-based) of the deepest node on ``loc`` that exists in the file."""
    if root is None:
        return 1
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# --- turning pydantic errors into operator language ---------------------------

PATTERN_HINTS = {
    "name": "use lowercase letters, digits, '-' and '_' (e.g. web1)",
    "project": "use lowercase letters, digits, '-' and '_' (e.g. ai-platform)",
    "user": "use a Unix user name such as root or deploy",
    "address": "use an IP address or a host name",
    "rate": "write it like 10r/s or 30r/m",
    "client_max_body_size": "write a size like 10m or 512k",
    "memory_limit": "write it like 512M or 1G",
    "health_path": "write a URL path starting with /",
    "websocket_path": "write a URL path starting with /",
    "assets_dir": "write a folder name such as assets",
    "allow": "write a port or range with an optional protocol, e.g. 22/tcp or 6000:6007/udp",
    "deny": "write a port or range with an optional protocol, e.g. 3001/tcp",
}
ENV_NAME_HINT = "environment variable names are UPPER_CASE letters, digits and _"


def _clean_loc(loc: Loc) -> Loc:
    # pydantic appends validator tags such as 'function-after[...]' or '[key]'.
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and "(" not in p))


def _from_pydantic(err: Any) -> Problem:
    loc = _clean_loc(tuple(err["loc"]))
    kind = err["type"]
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    hint = ""
    if kind == "missing":
        message = "is required but missing"
        hint = f"add `{field}:` here"
    elif kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        close = difflib.get_close_matches(str(field), allowed, n=1)
        message = "is not a known field"
        hint = f"did you mean `{close[0]}`?" if close else f"allowed here: {', '.join(allowed)}"
    elif kind == "string_pattern_mismatch":
        message = f"{err.get('input')!r} is not valid"
        if "[key]" in str(err["loc"]) or field in {"requires", "names", "env"}:
            hint = ENV_NAME_HINT
        else:
            hint = PATTERN_HINTS.get(str(field), f"expected pattern {err['ctx']['pattern']}")
    elif kind in {"int_parsing", "int_type", "int_from_float"}:
        hint = "write a whole number"
    elif kind in {"bool_parsing", "bool_type"}:
        hint = "write true or false"
    elif kind in {"model_type", "dict_type", "model_attributes_type"}:
        message = f"should be a mapping (key: value lines), got {type(err.get('input')).__name__}"
    elif kind == "list_type":
        got = type(err.get("input")).__name__
        message = f"should be a list (lines starting with '- '), got {got}"
    elif kind == "too_short":
        hint = "add at least one entry"
    elif kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        bound = next(iter(err.get("ctx", {}).values()), "")
        word = {"greater_than_equal": "at least", "greater_than": "more than",
                "less_than_equal": "at most", "less_than": "less than"}[kind]
        message = f"{err.get('input')!r} is out of range"
        hint = f"use a value {word} {bound}"
    elif kind in {"string_type", "float_type"}:
        got = type(err.get("input")).__name__
        message = f"should be {'text' if kind == 'string_type' else 'a number'}, got {got}"
        scalar = not isinstance(err.get("input"), (list, dict))
        hint = ("put the value in quotes" if scalar else "write a single value") \
            if kind == "string_type" else "write a number"
    elif kind == "literal_error":
        hint = "pick one of the values listed"
    return Problem(loc, message, hint)


def _unwrap(annotation: Any) -> list[Any]:
    """The classes an annotation may hold, looking through Annotated, Optional, list, dict."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [c for a in typing.get_args(annotation) for c in _unwrap(a)]
    if origin in (list, dict):
        return _unwrap(typing.get_args(annotation)[-1])
    return [annotation]


def _allowed_fields(loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` (dict keys and list indexes skipped)."""
    model: type[BaseModel] = Inventory
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            continue
        for candidate in _unwrap(model.model_fields[part].annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
    return list(model.model_fields)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _format(path: Path, root: yaml.Node | None, problem: Problem) -> str:
    line = problem.line or line_of(root, problem.loc)
    text = f"{path}:{line}: {_dotted(problem.loc)}: {problem.message}".replace("\n", "\\n")
    return f"{text} — {problem.hint}" if problem.hint else text


# --- rules that span several fields ----------------------------------------------


def semantic_problems(inventory: Inventory) -> list[Problem]:
    """Cross-field rules pydantic cannot express field by field."""
    problems: list[Problem] = []
    for env_name, env in inventory.environments.items():
        problems += _environment_problems(("environments", env_name), env)
    return problems


def _environment_problems(at: Loc, env: Environment) -> list[Problem]:
    problems: list[Problem] = []
    names: dict[str, int] = {}
    endpoints: dict[tuple[str, int], int] = {}
    for i, host in enumerate(env.hosts):
        if host.name in names:
            problems.append(
                Problem(at + ("hosts", i, "name"), f"host name {host.name!r} is used twice",
                        "give every host its own name")
            )
        names[host.name] = i
        endpoint = (host.address, host.port)
        if endpoint in endpoints:
            problems.append(
                Problem(at + ("hosts", i, "port"),
                        f"{host.address}:{host.port} is already host #{endpoints[endpoint]}",
                        "each host needs its own address or SSH port")
            )
        endpoints[endpoint] = i
    seen_upstreams: dict[str, int] = {}
    for i, host in enumerate(env.hosts):
        if "backend" not in host.roles:
            continue
        where = host.private_address.replace("{address}", host.address)
        if where in seen_upstreams:
            problems.append(
                Problem(at + ("hosts", i, "private_address"),
                        f"{where} is already the backend address of host "
                        f"#{seen_upstreams[where]}",
                        "give each backend host the address nginx reaches it on "
                        "(private_address)")
            )
        seen_upstreams[where] = i
    for role in ("web", "backend"):
        if not env.hosts_with(role):
            problems.append(
                Problem(at + ("hosts",), f"no host has the role {role!r}",
                        f"add `{role}` to the roles of at least one host")
            )
    declared = set(env.secrets.names) | set(env.backend.env)
    for i, var in enumerate(env.backend.requires):
        if var not in declared:
            problems.append(
                Problem(at + ("backend", "requires", i),
                        f"{var} is required by the backend but has no source",
                        "add it to secrets.names (secret) or backend.env (plain value)")
            )
    token = env.health.probe_token
    if token and token not in env.secrets.names:
        problems.append(
            Problem(at + ("health", "probe_token"),
                    f"{token} is the probe token but not a secret",
                    f"add {token} to secrets.names")
        )
    if "telegram" in env.model_fields_set:
        # A `telegram:` section means the bot is run from here: both its secrets must exist.
        for field in ("token_secret", "webhook_secret"):
            name = getattr(env.telegram, field)
            if name not in env.secrets.names:
                problems.append(
                    Problem(at + ("telegram", field),
                            f"{name} is the bot's {field.replace('_', ' ')} but not a secret",
                            f"add {name} to secrets.names")
                )
    if env.health.disk_fail_percent > env.health.disk_warn_percent:
        problems.append(
            Problem(at + ("health", "disk_fail_percent"),
                    "disk_fail_percent is above disk_warn_percent",
                    "fail below a smaller free share than the warning, e.g. 5 and 15")
        )
    for i, var in enumerate(env.secrets.names):
        if var in env.backend.env:
            problems.append(
                Problem(at + ("secrets", "names", i),
                        f"{var} is both a secret and a plain backend.env value",
                        "keep it in one place")
            )
    ports = env.backend.ports
    for which in ("http_port", "https_port"):
        port = getattr(env.nginx, which)
        if port in ports:
            problems.append(
                Problem(at + ("nginx", which), f"port {port} is also a backend instance port",
                        f"backend instances use {ports[0]}..{ports[-1]}")
            )
    if env.nginx.http_port == env.nginx.https_port:
        problems.append(
            Problem(at + ("nginx", "https_port"), "http_port and https_port are the same",
                    "use two different ports (80 and 443)")
        )
    if env.backend.kind == "python" and "{port}" not in env.backend.start:
        problems.append(
            Problem(at + ("backend", "start"),
                    "a python backend's start command must contain {port}",
                    "each instance listens on its own port, e.g. uvicorn app:app --port {port}")
        )
    # Let's Encrypt validates on port 80; a test ACME server (tls.acme_server, e.g.
    # pebble's httpPort) may validate on another.
    if env.nginx.tls.mode == "letsencrypt" and env.nginx.http_port != 80 \
            and not env.nginx.tls.acme_server:
        problems.append(
            Problem(at + ("nginx", "http_port"),
                    "Let's Encrypt http-01 challenges arrive on port 80",
                    "set http_port: 80, name a test ACME server (tls.acme_server) or use "
                    "tls.mode provided/self-signed")
        )
    return problems
