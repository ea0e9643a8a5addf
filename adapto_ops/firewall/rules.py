"""ufw's state as typed values, parsed from what ufw itself prints (pure, no I/O).

The rules come from `ufw show added`, not from `ufw status`: it lists the user
rules whether or not ufw is enabled, once per rule (no "(v6)" twins), in the
very syntax ufw accepts back, so a rule read here is deleted with
``ufw delete <rule.text>``. The default policies come from /etc/default/ufw,
the file `ufw enable` loads them from (ufw prints them only while active).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace

ACTIONS = ("allow", "deny", "reject", "limit")
# Rules adapto adds carry a comment starting with this; only those are ever deleted.
MANAGED_PREFIX = "adapto"
POLICIES = {"DROP": "deny", "ACCEPT": "allow", "REJECT": "reject"}


@dataclass(frozen=True)
class UfwRule:
    """One ufw user rule. ``simple``: fully understood (else only ``text`` is trusted)."""

    action: str  # allow | deny | reject | limit | route
    port: str | None = None  # "22", "80,443", "3000:3005"; None: every port
    proto: str | None = None  # tcp | udp; None: both
    direction: str = "in"  # in | out | route
    source: str = "any"
    interface: str | None = None
    comment: str = ""
    text: str = ""  # the rule as `ufw show added` prints it, without the leading "ufw "
    simple: bool = True

    @property
    def managed(self) -> bool:
        """Added by adapto (its comment says so): the only rules adapto may delete."""
        return self.comment.startswith(MANAGED_PREFIX)

    @property
    def spec(self) -> tuple[str, str | None, str | None, str, str, str | None]:
        """What the rule does, comment left out: two rules with one spec are one rule."""
        return (self.action, self.port, self.proto, self.direction, self.source, self.interface)

    @property
    def portspec(self) -> str:
        """``22/tcp`` style (as the inventory writes it)."""
        return f"{self.port}/{self.proto}" if self.proto else str(self.port)

    @property
    def from_anywhere(self) -> bool:
        """Applies to every client on every interface (a rule for some sources only does not)."""
        return self.simple and self.source in {"any", "Anywhere"} and self.interface is None

    def covers(self, port: int, proto: str = "tcp") -> bool:
        """Whether this incoming rule matches ``port``/``proto`` (any source aside)."""
        if self.direction != "in" or (self.proto and self.proto != proto):
            return False
        if self.port is None:
            return self.simple
        for part in self.port.split(","):
            low, _, high = part.partition(":")
            try:
                if int(low) <= port <= int(high or low):
                    return True
            except ValueError:
                return False
        return False

    def describe(self) -> str:
        """The rule in ufw's own words, e.g. ``allow 22/tcp comment 'adapto: ssh'``."""
        return self.text or self.command_text()

    def command_text(self) -> str:
        """The ufw arguments that add this rule (simple rules only)."""
        words = [self.action]
        if self.direction == "out":
            words.append("out")
        words.append(self.portspec)
        if self.comment:
            words += ["comment", shlex.quote(self.comment)]
        return " ".join(words)


def wanted_rule(action: str, portspec: str, comment: str) -> UfwRule:
    """A rule adapto wants, from an inventory entry such as ``3001/tcp``."""
    port, _, proto = portspec.partition("/")
    rule = UfwRule(action=action, port=port, proto=proto or None, comment=comment)
    return replace(rule, text=rule.command_text())


def parse_rule(line: str) -> UfwRule | None:
    """One line of `ufw show added` (``ufw allow 22/tcp comment 'x'``), or None if not a rule."""
    line = line.strip()
    if not line.startswith("ufw "):
        return None
    text = line[4:].strip()
    try:
        words = shlex.split(text)
    except ValueError:
        return UfwRule(action="unknown", text=text, simple=False)
    comment = ""
    if "comment" in words:
        at = words.index("comment")
        comment = " ".join(words[at + 1:])
        words = words[:at]
    if words and words[0] == "route":
        return UfwRule(action="route", direction="route", comment=comment, text=text,
                       simple=False)
    if not words or words[0] not in ACTIONS:
        return UfwRule(action=words[0] if words else "unknown", comment=comment, text=text,
                       simple=False)
    action, rest = words[0], words[1:]
    direction, interface, simple = "in", None, True
    if rest and rest[0] in {"in", "out"}:
        direction, rest = rest[0], rest[1:]
    if len(rest) >= 2 and rest[0] == "on":
        interface, rest = rest[1], rest[2:]
    if rest and rest[0] in {"log", "log-all"}:
        rest = rest[1:]
    port = proto = None
    source = "any"
    if rest and rest[0] not in {"from", "to", "proto"}:
        # The short form: one port spec ("22/tcp", "80,443/tcp") or an application profile.
        spec = rest[0]
        port, _, proto_part = spec.partition("/")
        proto = proto_part or None
        simple = len(rest) == 1 and all(c.isdigit() or c in ",:" for c in port)
    else:
        # The full form: [proto P] [from ADDR [port P]] [to ADDR [port P]] [app NAME].
        i = 0
        while i < len(rest):
            word = rest[i]
            value = rest[i + 1] if i + 1 < len(rest) else ""
            if word == "proto":
                proto = value
            elif word == "from":
                source = value
            elif word == "port" and i >= 2 and rest[i - 2] == "to":
                port = value
            elif word == "port":  # a source port: more specific than we model
                simple = False
            elif word == "to":
                simple = simple and value in {"any", "0.0.0.0/0", "::/0"}
            elif word == "app":
                simple = False
            else:
                simple = False
                i -= 1
            i += 2
    return UfwRule(action=action, port=port, proto=proto, direction=direction, source=source,
                   interface=interface, comment=comment, text=text, simple=simple)


@dataclass(frozen=True)
class UfwFacts:
    """What a host's ufw is: enabled or not, its default policies and its user rules."""

    state: str = "unknown"  # active | inactive | not installed | unknown (why)
    rules: list[UfwRule] = field(default_factory=list)
    default_incoming: str | None = None  # deny | allow | reject
    default_outgoing: str | None = None
    error: str | None = None  # why the rules could not be read

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def readable(self) -> bool:
        return self.state in {"active", "inactive"} and self.error is None


def parse_status_state(text: str) -> str:
    """``active``/``inactive`` from `ufw status`, ``not installed``, or ``unknown (why)``."""
    if text.strip() == "not-installed":
        return "not installed"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Status:"):
            return line.split(":", 1)[1].strip()
    return f"unknown ({lines[-1][:80] if lines else 'no answer'})"


def parse_added(text: str) -> tuple[list[UfwRule], str | None]:
    """`ufw show added` as rules in ufw's order, or an error when it did not answer."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not any(line.startswith("Added user rules") for line in lines):
        return [], (lines[-1][:120] if lines else "ufw show added gave no answer")
    rules = [r for r in (parse_rule(line) for line in lines) if r is not None]
    return rules, None


def parse_defaults(text: str) -> tuple[str | None, str | None]:
    """Incoming and outgoing policies from /etc/default/ufw's DEFAULT_*_POLICY lines."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = POLICIES.get(value.strip().strip("\"'").upper(), value.strip())
    return values.get("DEFAULT_INPUT_POLICY"), values.get("DEFAULT_OUTPUT_POLICY")


def parse_ufw_facts(status: str, added: str, defaults: str) -> UfwFacts:
    """The three ufw sections of a facts read as one :class:`UfwFacts`."""
    state = parse_status_state(status)
    if state not in {"active", "inactive"}:
        return UfwFacts(state=state, error=state)
    rules, error = parse_added(added)
    incoming, outgoing = parse_defaults(defaults)
    return UfwFacts(state=state, rules=rules, default_incoming=incoming,
                    default_outgoing=outgoing, error=error)


def parse_ssh_port(text: str) -> int | None:
    """The server's port from ``$SSH_CONNECTION`` ("client port server port"); None if absent."""
    parts = text.split()
    return int(parts[3]) if len(parts) == 4 and parts[3].isdigit() else None
