"""The firewall a host should have, against the one ufw reports: the difference, or a refusal.

Pure: :func:`plan_firewall` takes the inventory's environment and host, the
ufw facts read from the host and the SSH port adapto is connected through,
and returns the ufw commands that close the gap, in an order that keeps that
SSH port reachable at every step (its allow first, `ufw enable` last). It
refuses, with one line, any plan whose end state would drop adapto's own SSH
connection. Only rules whose comment marks them as adapto's are ever deleted;
rules somebody added by hand are reported, never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapto_ops.errors import EXIT_FAILED, EXIT_USAGE
from adapto_ops.firewall.rules import UfwFacts, UfwRule, wanted_rule
from adapto_ops.inventory.model import Environment, Host

SSH_COMMENT = "adapto: ssh"
ALLOW_COMMENT = "adapto: allow"
DENY_COMMENT = "adapto: deny"
WANTED_INCOMING = "deny"
WANTED_OUTGOING = "allow"
MAX_EXPANDED_PORTS = 4096  # a range wider than this is checked at its ends only


@dataclass(frozen=True)
class FirewallPlan:
    """What to run on one host to make its ufw match the inventory.

    ``changes``: ufw commands in order (as the operator would type them; the
    procedure adds sudo when the SSH user is not root). ``missing``: wanted
    rules ufw lacks. ``extra``: ufw rules the inventory does not want; the
    adapto-managed ones are deleted by ``changes``, the ``foreign`` ones only
    reported. ``conflicts``: foreign rules that defeat a wanted one (they come
    first in ufw's order, and ufw's first match wins). ``refusal``: why this
    plan must not be applied (it would lock adapto out, or cannot be made),
    with ``refusal_exit`` the exit code (2: fix the inventory, 1: fix the host).
    """

    host: str
    ssh_port: int
    state: str
    changes: list[str] = field(default_factory=list)
    missing: list[UfwRule] = field(default_factory=list)
    extra: list[UfwRule] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # default policies / enable to change
    refusal: str | None = None
    refusal_exit: int = EXIT_FAILED
    rules: list[UfwRule] = field(default_factory=list)  # ufw's rules as read

    @property
    def in_sync(self) -> bool:
        """ufw already is what the inventory asks: nothing to change, nothing in the way."""
        return not self.changes and not self.conflicts and self.refusal is None

    @property
    def foreign(self) -> list[UfwRule]:
        """Unwanted rules adapto did not add (reported, never deleted)."""
        return [r for r in self.extra if not r.managed]

    @property
    def deletions(self) -> list[UfwRule]:
        """Unwanted rules adapto added earlier: ``changes`` deletes them."""
        return [r for r in self.extra if r.managed]


def wanted_rules(env: Environment, ssh_port: int) -> list[UfwRule]:
    """SSH first, then the inventory's allows, then its denies (duplicates dropped)."""
    rules = [wanted_rule("allow", f"{ssh_port}/tcp", SSH_COMMENT)]
    rules += [wanted_rule("allow", r, ALLOW_COMMENT) for r in env.firewall.allow]
    rules += [wanted_rule("deny", r, DENY_COMMENT) for r in env.firewall.deny]
    seen: set[tuple[object, ...]] = set()
    unique = []
    for rule in rules:
        if rule.spec not in seen:
            seen.add(rule.spec)
            unique.append(rule)
    return unique


def _ports(rule: UfwRule) -> list[int]:
    """The ports a simple rule names (a wide range: its two ends)."""
    ports: list[int] = []
    for part in (rule.port or "").split(","):
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            continue
        lo, hi = int(low), int(high or low)
        ports += range(lo, hi + 1) if hi - lo < MAX_EXPANDED_PORTS else [lo, hi]
    return ports


def _overlap(a: UfwRule, b: UfwRule) -> bool:
    """Whether rule ``a`` matches some port/protocol that ``b`` names."""
    protos = [b.proto] if b.proto else ["tcp", "udp"]
    return any(a.covers(p, proto) for p in _ports(b) for proto in protos)


def _first_match(rules: list[UfwRule], port: int) -> UfwRule | None:
    """The rule ufw would apply to a new TCP connection from anywhere to ``port``."""
    for rule in rules:
        if rule.from_anywhere and rule.covers(port, "tcp"):
            return rule
    return None


def _inventory_refusal(env: Environment, host: Host, ssh_port: int | None) -> str | None:
    """Inventory mistakes that would lock adapto out or cannot be applied (exit 2)."""
    connected = ssh_port if ssh_port is not None else host.port
    if ssh_port is not None and ssh_port != host.port:
        return (f"{host.name}: adapto is connected through SSH port {ssh_port} but the "
                f"inventory says port {host.port}; rules for the wrong port could lock adapto "
                "out: fix hosts[].port")
    ssh = wanted_rule("allow", f"{connected}/tcp", SSH_COMMENT)
    for entry in env.firewall.deny:
        if _overlap(wanted_rule("deny", entry, DENY_COMMENT), ssh):
            return (f"{host.name}: firewall.deny {entry} would block SSH port {connected}, "
                    "which adapto is connected through; remove it from firewall.deny")
    for entry in env.firewall.deny:
        deny = wanted_rule("deny", entry, DENY_COMMENT)
        for allowed in env.firewall.allow:
            if _overlap(deny, wanted_rule("allow", allowed, ALLOW_COMMENT)):
                return (f"{host.name}: firewall.allow {allowed} and firewall.deny {entry} name "
                        "the same port; keep it in one list")
    return None


def _conflicts(foreign: list[UfwRule], wanted: list[UfwRule]) -> list[str]:
    """Foreign rules (from anywhere) that open a port we deny or close a port we allow."""
    found = []
    for rule in foreign:
        if not rule.from_anywhere:
            continue
        for want in wanted:
            opens = rule.action in {"allow", "limit"} and want.action == "deny"
            closes = rule.action in {"deny", "reject"} and want.action == "allow"
            if (opens or closes) and _overlap(rule, want):
                verb = "opens" if opens else "closes"
                found.append(f"foreign rule `{rule.describe()}` {verb} {want.portspec}, which "
                             f"the inventory wants {want.action}ed (delete it: "
                             f"ufw delete {rule.text})")
                break
    return found


def plan_firewall(env: Environment, host: Host, ufw_facts: UfwFacts,
                  ssh_port: int | None) -> FirewallPlan:
    """The minimal ufw commands that make ``host`` match ``env.firewall``, or a refusal.

    ``ssh_port``: the server-side port adapto's SSH connection arrived on (from
    ``$SSH_CONNECTION``); None when unknown (a local connection): ``host.port``.
    """
    connected = ssh_port if ssh_port is not None else host.port
    base = FirewallPlan(host=host.name, ssh_port=connected, state=ufw_facts.state,
                        rules=list(ufw_facts.rules))
    if not env.firewall.manage:
        return _with(base, refusal=f"{host.name}: firewall.manage is false: adapto leaves "
                     "this environment's firewall alone", refusal_exit=EXIT_USAGE)
    if ufw_facts.state == "not installed":
        return _with(base, refusal=f"{host.name}: ufw is not installed (apt-get install ufw)")
    if not ufw_facts.readable:
        return _with(base, refusal=f"{host.name}: cannot read ufw: {ufw_facts.error}")
    wanted = wanted_rules(env, connected)
    present = {r.spec for r in ufw_facts.rules}
    wanted_specs = {r.spec for r in wanted}
    missing = [r for r in wanted if r.spec not in present]
    extra = [r for r in ufw_facts.rules if r.spec not in wanted_specs or not r.simple]
    deletions = [r for r in extra if r.managed]
    settings = []
    changes = []
    ssh_missing = [r for r in missing if r.comment == SSH_COMMENT]
    # The SSH allow goes first: every later step (deleting an old SSH rule, enabling)
    # happens with the connection's port already open.
    changes += [f"ufw {r.command_text()}" for r in ssh_missing]
    changes += [f"ufw delete {r.text}" for r in deletions]
    changes += [f"ufw {r.command_text()}" for r in missing if r not in ssh_missing]
    if ufw_facts.default_incoming != WANTED_INCOMING:
        settings.append(f"default incoming: {ufw_facts.default_incoming} -> {WANTED_INCOMING}")
        changes.append(f"ufw default {WANTED_INCOMING} incoming")
    if ufw_facts.default_outgoing != WANTED_OUTGOING:
        settings.append(f"default outgoing: {ufw_facts.default_outgoing} -> {WANTED_OUTGOING}")
        changes.append(f"ufw default {WANTED_OUTGOING} outgoing")
    if not ufw_facts.active:
        settings.append("enable ufw")
        changes.append("ufw --force enable")
    plan = _with(base, changes=changes, missing=missing, extra=extra, settings=settings,
                 conflicts=_conflicts([r for r in extra if not r.managed], wanted))
    refusal = _inventory_refusal(env, host, ssh_port)
    if refusal:
        return _with(plan, refusal=refusal, refusal_exit=EXIT_USAGE)
    # The end state, in ufw's order (new rules are appended): what will a new SSH
    # connection meet first?
    final = [r for r in ufw_facts.rules if r not in deletions] + missing
    first = _first_match(final, connected)
    if first is not None and first.action in {"deny", "reject"}:
        return _with(plan, refusal=(
            f"{host.name}: ufw rule `{first.describe()}` comes before the SSH allow and would "
            f"lock adapto out of port {connected}; delete it first (ufw delete {first.text})"))
    if first is None and WANTED_INCOMING != "allow":
        return _with(plan, refusal=(f"{host.name}: default incoming deny without an allow for "
                                    f"SSH port {connected} would lock adapto out"))
    return plan


def _with(plan: FirewallPlan, **changes: object) -> FirewallPlan:
    from dataclasses import replace

    return replace(plan, **changes)  # type: ignore[arg-type]


def plan_json(plan: FirewallPlan) -> dict[str, object]:
    """One host's plan as plain data (what --json prints)."""
    return {
        "host": plan.host, "ufw": plan.state, "ssh_port": plan.ssh_port,
        "in_sync": plan.in_sync, "changes": plan.changes,
        "missing": [r.describe() for r in plan.missing],
        "extra_managed": [r.describe() for r in plan.deletions],
        "foreign": [r.describe() for r in plan.foreign],
        "settings": plan.settings, "conflicts": plan.conflicts, "refusal": plan.refusal,
        "rules": [r.describe() for r in plan.rules],
    }
