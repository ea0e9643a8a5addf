"""inventory.yaml validation: every malformed inventory is one precise line per problem.

Most bad inventories are the repository's own inventory.yaml with one targeted
edit, so each case shows exactly which change the loader must catch. The
expected line number is found independently, by locating a marker in the
edited text; the loader's answer must name that line, the file, and the dotted
field path, all on a single line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapto_ops.errors import InventoryError, SecretError
from adapto_ops.inventory import (
    Backend,
    Environment,
    Host,
    for_host,
    load_inventory,
    parse_inventory,
)
from adapto_ops.inventory.secrets import (
    SecretValues,
    dotenv_quote,
    mask,
    parse_dotenv,
    resolve_secrets,
)

REPO = Path(__file__).resolve().parent.parent
BASE_TEXT = (REPO / "inventory.yaml").read_text(encoding="utf-8")
BAD_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bad"
INV = Path("inv.yaml")
P = "environments.production"
S = "environments.sandbox"


# --- helpers -------------------------------------------------------------------------


def edit(old: str, new: str, text: str = BASE_TEXT) -> str:
    """``text`` with the first ``old`` replaced; fails loudly if the base changed."""
    assert old in text, f"base inventory no longer contains {old!r}"
    return text.replace(old, new, 1)


def line_with(text: str, marker: str, after: str | None = None) -> int:
    """1-based number of the first line containing ``marker`` (after the line with ``after``)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line) + 1
    for number, line in enumerate(lines[start:], start=start + 1):
        if marker in line:
            return number
    raise AssertionError(f"marker {marker!r} not found")


def problem_lines(text: str, path: Path = INV) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, path)
    exc = caught.value
    lines = exc.lines()
    assert lines, "an InventoryError must carry at least one line"
    assert exc.message == lines[0]
    for line in lines:
        assert "\n" not in line and "\r" not in line, f"multi-line message: {line!r}"
        assert line.startswith(f"{path}:"), line
    return lines


def assert_one_line_problem(
    text: str, line: int, dotted: str | None, fragment: str, path: Path = INV
) -> str:
    """The first problem names file:line and the dotted path, and says ``fragment``."""
    lines = problem_lines(text, path)
    first = lines[0]
    prefix = f"{path}:{line}: "
    assert first.startswith(prefix), f"expected line {line}: {first!r}"
    if dotted is not None:
        assert first.startswith(f"{prefix}{dotted}: "), f"expected path {dotted}: {first!r}"
    assert fragment in first, first
    return first


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    marker: str  # a substring of the line the message must name
    dotted: str | None  # None: a YAML syntax error, which has no field path yet
    fragment: str
    after: str | None = None


HOST_BLOCK = (
    "      - name: prod1\n"
    "        address: 89.23.97.45\n"
    "        port: 22\n"
    "        user: root\n"
    "        key_file: ~/.ssh/id_ed25519\n"
    "        roles: [web, backend]\n"
)

CASES = [
    Case(
        "yaml-mapping-in-value",
        edit("      instances: 2\n", "      instances: 2: 3\n"),
        "instances: 2: 3", None, "YAML syntax error",
    ),
    Case(
        "yaml-tab-indent",
        edit("      instances: 2\n", "      instances: 2\n\tbase_port: 3001\n"),
        "\tbase_port", None, "YAML syntax error",
    ),
    Case(
        "yaml-undefined-alias",
        edit("      instances: 2\n", "      instances: *two\n"),
        "instances: *two", None, "undefined alias",
    ),
    Case(
        "missing-backend-kind",
        edit("      kind: node\n", ""),
        "    backend:", f"{P}.backend.kind", "is required but missing",
    ),
    Case(
        "missing-nginx-tls",
        edit("      tls:\n        mode: letsencrypt\n        email: admin@adaptoai.ru\n", ""),
        "    nginx:", f"{P}.nginx.tls", "is required but missing",
    ),
    Case(
        "missing-paths-root",
        edit("      root: /var/www/ai-platform\n", ""),
        "    paths:", f"{P}.paths.root", "add `root:` here",
    ),
    Case(
        "missing-project",
        edit("project: ai-platform\n", ""),
        "version: 1", "project", "is required but missing",
    ),
    Case(
        "unknown-field-typo",
        edit("      base_port: 3001\n", "      base_prot: 3001\n"),
        "base_prot:", f"{P}.backend.base_prot", "did you mean `base_port`?",
    ),
    Case(
        "unknown-field-typo-in-host",
        edit("        user: root\n", "        usr: root\n"),
        "usr: root", f"{P}.hosts[0].usr", "did you mean `user`?",
    ),
    Case(
        "instances-not-a-number",
        edit("      instances: 2\n", "      instances: two\n"),
        "instances: two", f"{P}.backend.instances", "write a whole number",
    ),
    Case(
        "ssh-port-out-of-range",
        edit("        port: 22\n", "        port: 70000\n"),
        "port: 70000", f"{P}.hosts[0].port", "65535",
    ),
    Case(
        "instances-zero",
        edit("      instances: 2\n", "      instances: 0\n"),
        "instances: 0", f"{P}.backend.instances", "0 is out of range — use a value at least 1",
    ),
    Case(
        "backend-kind-ruby",
        edit("      kind: node\n", "      kind: ruby\n"),
        "kind: ruby", f"{P}.backend.kind", "'python' or 'node'",
    ),
    Case(
        "tls-mode-acme",
        edit("        mode: letsencrypt\n", "        mode: acme\n"),
        "mode: acme", f"{P}.nginx.tls.mode", "'letsencrypt', 'provided' or 'self-signed'",
    ),
    Case(
        "host-role-db",
        edit("        roles: [web, backend]\n", "        roles: [db]\n"),
        "roles: [db]", f"{P}.hosts[0].roles[0]", "'web' or 'backend'",
    ),
    Case(
        "relative-root",
        edit("      root: /var/www/ai-platform\n", "      root: var/www\n"),
        "root: var/www", f"{P}.paths.root", "absolute path",
    ),
    Case(
        "bad-server-name",
        edit("[adaptoai.ru, www.adaptoai.ru]", "[adaptoai.ru, 'www adaptoai!']"),
        "www adaptoai!", f"{P}.nginx.server_names[1]", "not a valid host name",
    ),
    Case(
        "bad-env-var-name-in-requires",
        edit("      requires:\n        - SUPABASE_URL\n",
             "      requires:\n        - supabase-url\n"),
        "- supabase-url", f"{P}.backend.requires[0]", "UPPER_CASE",
    ),
    Case(
        "bad-env-var-name-in-env",
        edit("        NODE_ENV: production\n", "        node_env: production\n"),
        "node_env: production", f"{P}.backend.env.node_env", "UPPER_CASE",
    ),
    Case(
        "secret-required-not-declared",
        edit("      requires:\n", "      requires:\n        - STRIPE_SECRET_KEY\n"),
        "- STRIPE_SECRET_KEY", f"{P}.backend.requires[0]",
        "STRIPE_SECRET_KEY is required by the backend but has no source",
    ),
    Case(
        "secret-also-plain-env",
        edit("        - GIGACHAT_AUTH_KEY\n", "        - GIGACHAT_AUTH_KEY\n        - NODE_ENV\n"),
        "        - NODE_ENV", f"{P}.secrets.names[5]", "both a secret and a plain backend.env",
    ),
    Case(
        "duplicate-host-name",
        edit(HOST_BLOCK, HOST_BLOCK + "      - name: prod1  # the second one\n"
             "        address: 10.0.0.2\n        roles: [backend]\n"),
        "# the second one", f"{P}.hosts[1].name", "'prod1' is used twice",
    ),
    Case(
        "duplicate-host-endpoint",
        edit(HOST_BLOCK, HOST_BLOCK + "      - name: prod2\n        address: 89.23.97.45\n"),
        "- name: prod2", f"{P}.hosts[1].port", "89.23.97.45:22 is already host #0",
    ),
    Case(
        "no-web-host",
        edit(HOST_BLOCK, HOST_BLOCK.replace("[web, backend]", "[backend]")),
        "    hosts:", f"{P}.hosts", "no host has the role 'web'",
    ),
    Case(
        "python-start-without-port",
        edit("--host {bind} --port {port}\n", "--host {bind}\n"),
        "app:app --host {bind}", f"{S}.backend.start", "must contain {port}",
    ),
    Case(
        "signal-control-without-prefix",
        edit("      control: systemd\n", "      control: signal\n"),
        "    nginx:", f"{P}.nginx", "control 'signal' needs a prefix",
    ),
    Case(
        "provided-tls-without-paths",
        edit("        mode: letsencrypt\n", "        mode: provided\n"),
        "      tls:", f"{P}.nginx.tls", "needs certificate and certificate_key",
    ),
    Case(
        "self-signed-with-stapling",
        edit("        mode: self-signed\n",
             "        mode: self-signed\n        ocsp_stapling: true\n"),
        "      tls:", f"{S}.nginx.tls", "self-signed", after="  sandbox:",
    ),
    Case(
        "rate-fast",
        edit("api: {rate: 20r/s, burst: 40}", "api: {rate: fast, burst: 40}"),
        "rate: fast", f"{P}.nginx.rate_limits.api.rate", "10r/s",
    ),
    Case(
        "body-size-lots",
        edit("client_max_body_size: 10m", "client_max_body_size: lots"),
        "client_max_body_size: lots", f"{P}.nginx.client_max_body_size", "'lots' is not valid",
    ),
    Case(
        "memory-limit-lowercase",
        edit("      memory_limit: 768M\n", "      memory_limit: 768mb\n"),
        "memory_limit: 768mb", f"{P}.backend.memory_limit", "512M",
    ),
    Case(
        "firewall-rule-ssh",
        edit("allow: [22/tcp, 80/tcp, 443/tcp]", "allow: [ssh, 80/tcp, 443/tcp]"),
        "allow: [ssh", f"{P}.firewall.allow[0]", "'ssh' is not valid",
    ),
    Case(
        "http-port-is-backend-port",
        edit("      http_port: 8080\n", "      http_port: 3002\n"),
        "http_port: 3002", f"{S}.nginx.http_port", "also a backend instance port",
    ),
    Case(
        "http-port-equals-https-port",
        edit("      https_port: 8443\n", "      https_port: 8080\n"),
        "https_port: 8080", f"{S}.nginx.https_port", "are the same",
    ),
    Case(
        "letsencrypt-off-port-80",
        edit("      control: systemd\n", "      control: systemd\n      http_port: 8081\n"),
        "http_port: 8081", f"{P}.nginx.http_port", "Let's Encrypt",
    ),
    Case(
        "version-2",
        edit("version: 1\n", "version: 2\n"),
        "version: 2", "version", "Input should be 1",
    ),
    Case(
        "keep-releases-one",
        edit("      keep_releases: 5\n", "      keep_releases: 1\n"),
        "keep_releases: 1", f"{P}.paths.keep_releases",
        "1 is out of range — use a value at least 2",
    ),
    Case(
        "environment-name-uppercase",
        edit("  production:\n", "  Production:\n"),
        "  Production:", "environments.Production", "is not valid",
    ),
    # Strict types: YAML already says what is a number, a bool or text; nothing is coerced.
    Case(
        "instances-yes",
        edit("      instances: 2\n", "      instances: yes\n"),
        "instances: yes", f"{P}.backend.instances", "valid integer",
    ),
    Case(
        "ssh-port-quoted",
        edit("        port: 22\n", '        port: "22"\n'),
        'port: "22"', f"{P}.hosts[0].port", "valid integer",
    ),
    Case(
        "http2-string",
        edit("      control: systemd\n", '      control: systemd\n      http2: "true"\n'),
        'http2: "true"', f"{P}.nginx.http2", "valid boolean",
    ),
    # Values nginx would reject.
    Case(
        "burst-zero",
        edit("api: {rate: 20r/s, burst: 40}", "api: {rate: 20r/s, burst: 0}"),
        "burst: 0", f"{P}.nginx.rate_limits.api.burst",
        "0 is out of range — use a value at least 1",
    ),
    Case(
        "rate-zero",
        edit("api: {rate: 20r/s, burst: 40}", "api: {rate: 0r/s, burst: 40}"),
        "rate: 0r/s", f"{P}.nginx.rate_limits.api.rate", "'0r/s' is not valid",
    ),
    Case(
        "websocket-path-under-api",
        edit("      control: systemd\n", "      control: systemd\n      websocket_path: /api/ws\n"),
        "    nginx:", f"{P}.nginx", "websocket_path '/api/ws' collides",
    ),
    Case(
        "websocket-path-root",
        edit("      control: systemd\n", "      control: systemd\n      websocket_path: /\n"),
        "    nginx:", f"{P}.nginx", "websocket_path '/' collides",
    ),
    Case(
        "assets-dir-api",
        edit("      dist: dist\n", "      dist: dist\n      assets_dir: api\n"),
        "assets_dir: api", f"{P}.frontend.assets_dir", "'api' would shadow the /api/ proxy",
    ),
    Case(
        "root-with-space",
        edit("      root: /var/www/ai-platform\n", "      root: /var/www/ai platform\n"),
        "root: /var/www/ai platform", f"{P}.paths.root", "must not contain spaces",
    ),
    Case(
        "access-log-with-brace",
        edit("      access_log: /var/log/nginx/access.log\n",
             "      access_log: /var/log/nginx/{access}.log\n"),
        "access_log: /var/log", f"{P}.nginx.access_log", "braces",
    ),
    Case(
        "access-log-with-dollar",
        edit("      access_log: /var/log/nginx/access.log\n",
             "      access_log: /var/log/nginx/$host.log\n"),
        "access_log: /var/log", f"{P}.nginx.access_log", "or $",
    ),
    Case(
        "listen-free-text",
        edit("      control: systemd\n",
             "      control: systemd\n      listen: [not an address]\n"),
        "listen: [not an address]", f"{P}.nginx.listen[0]",
        "'not an address' is not a valid host name",
    ),
    Case(
        "listen-uppercase-name",
        edit("      control: systemd\n",
             "      control: systemd\n      listen: [Shop.example.com]\n"),
        "listen: [Shop.example.com]", f"{P}.nginx.listen[0]",
        "'Shop.example.com' is not a valid host name",
    ),
    Case(
        "listen-not-an-ipv6",
        edit("      control: systemd\n", "      control: systemd\n      listen: ['::g']\n"),
        "listen: ['::g']", f"{P}.nginx.listen[0]", "'::g' is not an IP address",
    ),
    Case(
        "listen-short-ipv4",
        edit("      control: systemd\n", "      control: systemd\n      listen: ['1.2.3']\n"),
        "listen: ['1.2.3']", f"{P}.nginx.listen[0]", "'1.2.3' is not an IP address",
    ),
    Case(
        "listen-ipv4-octet-too-big",
        edit("      control: systemd\n",
             "      control: systemd\n      listen: ['999.1.1.1']\n"),
        "listen: ['999.1.1.1']", f"{P}.nginx.listen[0]", "'999.1.1.1' is not an IP address",
    ),
    Case(
        "listen-twice",
        edit("      control: systemd\n",
             "      control: systemd\n      listen: ['0.0.0.0', '0.0.0.0']\n"),
        "listen: ['0.0.0.0', '0.0.0.0']", f"{P}.nginx.listen",
        "'0.0.0.0' is listed twice (nginx refuses a duplicate listen)",
    ),
    Case(
        # nginx reads * as every IPv4 address: the same socket as 0.0.0.0.
        "listen-star-and-any",
        edit("      control: systemd\n",
             "      control: systemd\n      listen: ['*', '0.0.0.0']\n"),
        "listen: ['*', '0.0.0.0']", f"{P}.nginx.listen", "'0.0.0.0' is listed twice",
    ),
    Case(
        # The same IPv6 address, once bare and once in brackets.
        "listen-ipv6-twice-once-bare",
        edit("      control: systemd\n",
             "      control: systemd\n      listen: ['[::]', '::']\n"),
        "listen: ['[::]', '::']", f"{P}.nginx.listen", "'[::]' is listed twice",
    ),
    Case(
        "private-address-not-an-ipv6",
        edit(HOST_BLOCK, HOST_BLOCK + "        private_address: '::g'\n"),
        "private_address: '::g'", f"{P}.hosts[0].private_address", "'::g' is not an IP address",
    ),
    Case(
        "private-address-short-ipv4",
        edit(HOST_BLOCK, HOST_BLOCK + "        private_address: '1.2.3'\n"),
        "private_address: '1.2.3'", f"{P}.hosts[0].private_address",
        "'1.2.3' is not an IP address",
    ),
    Case(
        "stapling-resolver-colon",
        edit("        mode: letsencrypt\n",
             "        mode: letsencrypt\n        ocsp_resolver: [':']\n"),
        "ocsp_resolver: [':']", f"{P}.nginx.tls.ocsp_resolver[0]", "':' is not an IP address",
    ),
    Case(
        "stapling-resolver-host-name",
        edit("        mode: letsencrypt\n",
             "        mode: letsencrypt\n        ocsp_resolver: [dns.example]\n"),
        "ocsp_resolver: [dns.example]", f"{P}.nginx.tls.ocsp_resolver[0]",
        "'dns.example' is not an IP address",
    ),
    Case(
        # An Environment-level check: it names the environment, not the nginx section.
        "websocket-path-in-assets",
        edit("      control: systemd\n",
             "      control: systemd\n      websocket_path: /assets/ws\n"),
        "  production:", P,
        "nginx.websocket_path '/assets/ws' lies inside the assets location /assets/",
    ),
    Case(
        "stapling-without-resolver",
        edit("        mode: letsencrypt\n",
             "        mode: letsencrypt\n        ocsp_stapling: true\n"),
        "      tls:", f"{P}.nginx.tls", "ocsp_stapling needs ocsp_resolver",
    ),
    Case(
        "duplicate-private-address",
        edit(HOST_BLOCK, HOST_BLOCK + "      - name: api2\n        address: 10.0.0.2\n"
             "        roles: [backend]\n        private_address: 127.0.0.1  # again\n"),
        "# again", f"{P}.hosts[1].private_address",
        "127.0.0.1 is already the backend address of host #0",
    ),
    Case(
        # Neither host names its private address: both default to 127.0.0.1.
        "duplicate-default-private-address",
        edit(HOST_BLOCK, HOST_BLOCK + "      - name: api2\n        address: 10.0.0.2\n"
             "        roles: [backend]\n"),
        "- name: api2", f"{P}.hosts[1].private_address",
        "127.0.0.1 is already the backend address of host #0",
    ),
    Case(
        "key-with-newline",
        edit("      instances: 2\n", '      "inst\\nances": 2\n'),
        "inst\\nances", f"{P}.backend.inst\\nances", "did you mean `instances`?",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_inventory_is_one_precise_line(case: Case) -> None:
    expected_line = line_with(case.text, case.marker, case.after)
    assert_one_line_problem(case.text, expected_line, case.dotted, case.fragment)


def test_case_list_is_broad_enough() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


def _fixture_cases() -> list[Path]:
    return sorted(BAD_FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("fixture", _fixture_cases(), ids=lambda p: p.stem)
def test_bad_fixture_files(fixture: Path) -> None:
    """Compact full documents: `# expect-path:`/`# expect:` headers, `# <--` marks the line."""
    text = fixture.read_text(encoding="utf-8")
    headers = dict(re.findall(r"^# (expect(?:-path)?): (.*)$", text, flags=re.MULTILINE))
    dotted = headers["expect-path"].strip()
    expected_line = line_with(text, "# <--")
    # load_inventory reads the real file, so the message names its real path.
    with pytest.raises(InventoryError):
        load_inventory(fixture)
    assert_one_line_problem(
        text, expected_line, None if dotted == "-" else dotted, headers["expect"].strip(),
        path=fixture,
    )


def test_there_are_fixture_files() -> None:
    assert len(_fixture_cases()) >= 5


def test_duplicate_key_is_reported_with_its_path() -> None:
    text = edit("      keep_releases: 5\n", "      keep_releases: 5\n      keep_releases: 6\n")
    lines = problem_lines(text)
    first = lines[0]
    first_at = line_with(text, "keep_releases: 5")
    second_at = line_with(text, "keep_releases: 6")
    dotted = re.escape(f"{P}.paths.keep_releases")
    match = re.match(rf"^{re.escape(str(INV))}:(\d+): {dotted}: ", first)
    assert match, first
    assert int(match.group(1)) in {first_at, second_at}
    assert "appears twice" in first


def test_duplicate_key_names_the_line_of_the_duplicate() -> None:
    """The line to delete is the second occurrence, not the first."""
    text = edit("      keep_releases: 5\n", "      keep_releases: 5\n      keep_releases: 6\n")
    first = assert_one_line_problem(
        text, line_with(text, "keep_releases: 6"), f"{P}.paths.keep_releases", "appears twice"
    )
    assert not first.startswith(f"{INV}:{line_with(text, 'keep_releases: 5')}:")


def test_key_repeated_three_times_is_reported_at_each_repetition() -> None:
    """Each repetition is its own problem, on its own line."""
    text = edit("      instances: 2\n",
                "      instances: 2\n      instances: 3\n      instances: 4\n")
    lines = problem_lines(text)
    assert lines == [
        f"{INV}:{line_with(text, 'instances: 3')}: {P}.backend.instances: "
        "appears twice in the same mapping — keep one",
        f"{INV}:{line_with(text, 'instances: 4')}: {P}.backend.instances: "
        "appears twice in the same mapping — keep one",
    ]


def test_every_problem_is_reported_each_on_its_own_line() -> None:
    text = edit("      instances: 2\n", "      instances: two\n")
    text = edit("        mode: letsencrypt\n", "        mode: acme\n", text)
    text = edit("client_max_body_size: 10m", "client_max_body_size: lots", text)
    lines = problem_lines(text)
    assert len(lines) == 3, lines
    expected = {
        (line_with(text, "instances: two"), f"{P}.backend.instances"),
        (line_with(text, "mode: acme"), f"{P}.nginx.tls.mode"),
        (line_with(text, "client_max_body_size: lots"), f"{P}.nginx.client_max_body_size"),
    }
    found = {
        (int(m.group(1)), m.group(2))
        for m in (re.match(r"^inv\.yaml:(\d+): ([^ ]+): ", line) for line in lines)
        if m
    }
    assert found == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must be a mapping"),
        ("just a string\n", "must be a mapping"),
        ("- a\n- b\n", "must be a mapping"),
        ("version: 1\nproject: x\nenvironments:\n", "should be a mapping"),
        ("version: 1\nproject: x\nenvironments: {}\n", "at least 1 item"),
        ("a: 1\n---\nb: 2\n", "YAML syntax error"),
    ],
    ids=["empty", "scalar", "list", "null-environments", "empty-environments", "two-documents"],
)
def test_degenerate_documents(text: str, fragment: str) -> None:
    lines = problem_lines(text)
    assert fragment in lines[0]
    assert re.match(r"^inv\.yaml:\d+: ", lines[0])


CONTROL_CHARACTERS = ["\x07", "\x00", "\x1b", "\ufffe"]
CONTROL_IDS = ["bell", "nul", "escape", "noncharacter"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=CONTROL_IDS)
def test_control_character_is_an_inventory_error(char: str) -> None:
    text = edit("project: ai-platform\n", f"project: ai-platform{char}\n")
    assert line_with(text, "project: ai-platform") == 5
    [line] = problem_lines(text)
    assert re.match(r"inv\.yaml:5: character \S+ is not allowed in YAML\b", line), line


def test_control_character_later_in_the_file_names_its_line() -> None:
    text = edit("        user: root\n", "        user: ro\x01ot\n")
    [line] = problem_lines(text)
    assert re.match(
        rf"inv\.yaml:{line_with(text, 'user: ro')}: character \S+ is not allowed in YAML\b",
        line,
    ), line


CONTROL_HINT = (
    "is not allowed in YAML, quoted or not; delete it "
    "(inside double quotes an escape such as \\x07 is allowed)"
)


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=CONTROL_IDS)
def test_control_character_message_names_the_character(char: str) -> None:
    """The character is named by its code point, not by a bare int read as a column."""
    text = edit("project: ai-platform\n", f"project: ai-platform{char}\n")
    [line] = problem_lines(text)
    assert line == f"inv.yaml:5: character U+{ord(char):04X} {CONTROL_HINT}", line


def test_control_character_hint_does_not_suggest_quoting() -> None:
    # Already quoted, and still refused: quoting is no fix, and the hint says so.
    text = edit("project: ai-platform\n", 'project: "ai-platform\x07"\n')
    [line] = problem_lines(text)
    assert line == f"inv.yaml:5: character U+0007 {CONTROL_HINT}", line
    assert "quote the value" not in line, line


def test_control_character_hint_escape_works() -> None:
    """What the hint offers, a double-quoted escape, loads and gives the character."""
    text = edit("    description: The live platform of the runbook (adaptoai.ru).\n",
                '    description: "bell \\x07 here"\n')
    env = parse_inventory(text, INV).inventory.environments["production"]
    assert env.description == "bell \x07 here"


# --- what a valid inventory gives ------------------------------------------------------

MINIMAL = """\
version: 1
project: shop
environments:
  prod:
    hosts:
      - {name: web1, address: 192.0.2.10}
    paths: {root: /srv/shop}
    backend: {kind: node, source: api, start: npm start}
    nginx:
      server_names: [shop.example.com]
      tls: {mode: letsencrypt}
"""


def test_repository_inventory_loads() -> None:
    loaded = load_inventory(REPO / "inventory.yaml")
    assert loaded.path == (REPO / "inventory.yaml").resolve()
    assert loaded.base_dir == REPO
    inventory = loaded.inventory
    assert inventory.project == "ai-platform"
    assert {"production", "sandbox"} <= set(inventory.environments)
    production = loaded.environment("production")
    assert production.nginx.canonical_name == "adaptoai.ru"
    assert [h.name for h in production.hosts_with("web")] == ["prod1"]


def test_unknown_environment_names_the_defined_ones() -> None:
    loaded = load_inventory(REPO / "inventory.yaml")
    with pytest.raises(InventoryError) as caught:
        loaded.environment("nosuch")
    assert "'nosuch'" in caught.value.message
    for name in loaded.inventory.environments:
        assert name in caught.value.message


def test_missing_inventory_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in caught.value.message
    assert "adapto init" in caught.value.message


def test_defaults() -> None:
    env = parse_inventory(MINIMAL, INV).inventory.environments["prod"]
    assert env.backend.instances == 2
    assert env.backend.base_port == 3001
    assert env.backend.health_path == "/api/health"
    assert env.backend.ports == [3001, 3002]
    assert env.backend.name == "ai-platform-backend"
    assert env.hosts[0].port == 22
    assert env.hosts[0].user == "root"
    assert env.hosts[0].roles == ["web", "backend"]
    assert env.paths.keep_releases == 5
    assert env.nginx.http_port == 80 and env.nginx.https_port == 443
    assert env.nginx.tls.acme_webroot == "/var/www/letsencrypt"
    assert env.nginx.client_max_body_size == "10m"
    assert env.nginx.rate_limits.api.rate == "20r/s"
    assert env.nginx.rate_limits.auth.rate == "5r/m"
    assert env.firewall.allow == ["22/tcp", "80/tcp", "443/tcp"]
    assert env.nginx.site_config_path == "/etc/nginx/sites-available/shop.example.com"
    assert env.nginx.certificate_path == "/etc/letsencrypt/live/shop.example.com/fullchain.pem"
    assert env.nginx.ocsp_stapling is False
    assert env.nginx.tls.ocsp_resolver == []
    assert env.nginx.default_server is True
    assert env.nginx.listen == ["0.0.0.0", "[::]"]


@pytest.mark.parametrize(("base", "count"), [(3001, 1), (4000, 3), (65530, 6)])
def test_backend_ports_are_consecutive(base: int, count: int) -> None:
    backend = Backend(kind="node", source="api", start="npm start", base_port=base,
                      instances=count)
    assert backend.ports == list(range(base, base + count))
    assert len(backend.ports) == count


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"mode": "letsencrypt"}, False),
        ({"mode": "self-signed"}, False),
        ({"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem"}, False),
        # An issuer chain but no resolver: nginx could not reach the OCSP responder.
        ({"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem",
          "trusted_certificate": "/chain.pem"}, False),
        ({"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem",
          "ocsp_resolver": ["127.0.0.53"]}, False),
        ({"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem",
          "trusted_certificate": "/chain.pem", "ocsp_resolver": ["127.0.0.53"]}, True),
        ({"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem",
          "trusted_certificate": "/chain.pem", "ocsp_resolver": ["127.0.0.53"],
          "ocsp_stapling": False}, False),
        ({"mode": "letsencrypt", "ocsp_resolver": ["127.0.0.53"]}, False),
        ({"mode": "letsencrypt", "ocsp_stapling": True, "ocsp_resolver": ["127.0.0.53"]}, True),
    ],
)
def test_ocsp_stapling_decision(tls: dict, expected: bool) -> None:
    text = MINIMAL.replace("tls: {mode: letsencrypt}", "tls: " + _flow(tls))
    env = parse_inventory(text, INV).inventory.environments["prod"]
    assert env.nginx.ocsp_stapling is expected
    assert env.nginx.tls.ocsp_resolver == tls.get("ocsp_resolver", [])


@pytest.mark.parametrize(
    "tls",
    [
        {"mode": "letsencrypt", "ocsp_stapling": True},
        {"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem",
         "trusted_certificate": "/chain.pem", "ocsp_stapling": True},
        {"mode": "provided", "certificate": "/c.pem", "certificate_key": "/k.pem",
         "trusted_certificate": "/chain.pem", "ocsp_stapling": True, "ocsp_resolver": []},
    ],
    ids=["letsencrypt", "provided-chain", "provided-chain-empty-resolver"],
)
def test_ocsp_stapling_without_resolver_is_refused(tls: dict) -> None:
    text = MINIMAL.replace("tls: {mode: letsencrypt}", "tls: " + _flow(tls))
    assert_one_line_problem(
        text, line_with(text, "tls: {"), "environments.prod.nginx.tls",
        "ocsp_stapling needs ocsp_resolver",
    )


def _flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                           for k, v in mapping.items()) + "}"


def test_for_host_substitutes_host_and_address() -> None:
    loaded = load_inventory(REPO / "inventory.yaml")
    env = loaded.environment("sandbox")
    data = env.model_dump()
    second = dict(data["hosts"][0], name="sandbox2", address="127.0.0.3")
    data["hosts"].append(second)
    env = Environment.model_validate(data)
    for host in env.hosts:
        view = for_host(env, host)
        assert view.paths.root == f"/var/tmp/adapto-sandbox/{host.name}/app"
        assert view.backend.bind == host.address
        assert view.nginx.listen == [host.address]
        assert view.nginx.prefix == f"/var/tmp/adapto-sandbox/{host.name}/nginx"
        assert view.sandbox is not None
        assert view.sandbox.dir == f"/var/tmp/adapto-sandbox/{host.name}"
        # Every host stays listed, each with its own address filled in.
        assert [(h.name, h.private_address) for h in view.hosts] == [
            ("sandbox1", "127.0.0.2"), ("sandbox2", "127.0.0.3")
        ]
        assert "{host}" not in view.model_dump_json()
        assert "{address}" not in view.model_dump_json()
    # The original is untouched.
    assert env.paths.root == "/var/tmp/adapto-sandbox/{host}/app"


# The loader accepts {address} in listen and private_address; for_host then puts the
# host's address there: a DNS name fits as is, a bare IPv6 address gets its brackets.
PLACEHOLDER_ADDRESSES = [
    ("sandbox1.local", "sandbox1.local"),
    ("::2", "[::2]"),
    ("[::2]", "[::2]"),
]


@pytest.mark.parametrize(("address", "written"), PLACEHOLDER_ADDRESSES,
                         ids=["dns-name", "bare-ipv6", "bracketed-ipv6"])
def test_whatever_the_loader_accepts_resolves_for_every_host(address: str, written: str) -> None:
    text = edit("        address: 127.0.0.2\n", f'        address: "{address}"\n')
    env = parse_inventory(text, INV).environment("sandbox")
    for host in env.hosts:
        view = for_host(env, host)
        assert view.nginx.listen == [written]
        assert [h.private_address for h in view.hosts] == [written]


# Host.address takes more than an address nginx can use; where {address} turns it into
# an invalid listen or private_address, for_host says so in one line, naming the host.
UNUSABLE_ADDRESSES = [
    ("1.2.3", "'1.2.3' is not an IP address"),
    ("::g", "'::g' is not an IP address"),
    ("Sandbox1.local", "'Sandbox1.local' is not a valid host name"),
]


@pytest.mark.parametrize(("address", "says"), UNUSABLE_ADDRESSES,
                         ids=["short-ipv4", "not-an-ipv6", "uppercase-name"])
def test_address_unusable_after_substitution_is_an_inventory_error(
    address: str, says: str
) -> None:
    text = edit("        address: 127.0.0.2\n", f'        address: "{address}"\n')
    env = parse_inventory(text, INV).environment("sandbox")
    [host] = env.hosts
    with pytest.raises(InventoryError) as caught:
        for_host(env, host)
    message = caught.value.message
    assert caught.value.lines() == [message]
    assert "\n" not in message
    assert message.startswith(f"host sandbox1: with {{host}}=sandbox1 and {{address}}={address}, ")
    assert "private_address" in message, message
    assert says in message, message
    assert message.endswith(" — change the host's name/address or that field"), message


def test_listen_duplicated_by_substitution_is_an_inventory_error() -> None:
    """{address} may become a value already listed: nginx would refuse the duplicate."""
    text = edit('      listen: ["{address}"]\n', '      listen: ["{address}", 127.0.0.2]\n')
    env = parse_inventory(text, INV).environment("sandbox")
    [host] = env.hosts
    with pytest.raises(InventoryError) as caught:
        for_host(env, host)
    message = caught.value.message
    assert caught.value.lines() == [message]
    assert message.startswith("host sandbox1: with {host}=sandbox1 and {address}=127.0.0.2, ")
    assert "nginx.listen" in message
    assert "'127.0.0.2' is listed twice" in message, message


# --- addresses nginx is given ------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "written"),
    [
        (["::"], ["[::]"]),
        (["[::]"], ["[::]"]),
        (["::1", "127.0.0.1"], ["[::1]", "127.0.0.1"]),
        (["0:0:0:0:0:0:0:1"], ["[::1]"]),
        (["*", "[::]"], ["*", "[::]"]),
        (["shop.example.com"], ["shop.example.com"]),
        (["{address}"], ["{address}"]),
    ],
    ids=["bare-any-ipv6", "bracketed", "bare-loopback", "long-form", "star", "host-name",
         "placeholder"],
)
def test_listen_is_normalised_as_nginx_writes_it(listen: list[str], written: list[str]) -> None:
    text = MINIMAL.replace("      tls: {mode: letsencrypt}\n",
                           f"      tls: {{mode: letsencrypt}}\n      listen: {listen!r}\n")
    env = parse_inventory(text, INV).inventory.environments["prod"]
    assert env.nginx.listen == written


@pytest.mark.parametrize(
    ("private_address", "written"),
    [("::1", "[::1]"), ("[::1]", "[::1]"), ("fd00::0:7", "[fd00::7]"), ("10.0.0.7", "10.0.0.7"),
     ("api.internal", "api.internal")],
    ids=["bare-ipv6", "bracketed-ipv6", "long-ipv6", "ipv4", "host-name"],
)
def test_private_address_is_normalised_as_nginx_writes_it(
    private_address: str, written: str
) -> None:
    text = MINIMAL.replace("address: 192.0.2.10}",
                           f"address: 192.0.2.10, private_address: '{private_address}'}}")
    env = parse_inventory(text, INV).inventory.environments["prod"]
    assert env.hosts[0].private_address == written


@pytest.mark.parametrize(
    ("resolver", "written"),
    [(["::1"], ["[::1]"]), (["[::1]", "127.0.0.53"], ["[::1]", "127.0.0.53"])],
    ids=["bare-ipv6", "bracketed-and-ipv4"],
)
def test_ocsp_resolver_is_normalised_as_nginx_writes_it(
    resolver: list[str], written: list[str]
) -> None:
    text = MINIMAL.replace("tls: {mode: letsencrypt}",
                           f"tls: {{mode: letsencrypt, ocsp_resolver: {resolver!r}}}")
    env = parse_inventory(text, INV).inventory.environments["prod"]
    assert env.nginx.tls.ocsp_resolver == written


def test_websocket_path_beside_the_assets_is_accepted() -> None:
    """Only a path inside /<assets_dir>/ collides; a name that merely starts alike is fine."""
    text = MINIMAL.replace("      tls: {mode: letsencrypt}\n",
                           "      tls: {mode: letsencrypt}\n      websocket_path: /assetsws\n")
    env = parse_inventory(text, INV).inventory.environments["prod"]
    assert env.nginx.websocket_path == "/assetsws"


@pytest.mark.parametrize("path", ["/assets", "/assets/", "/assets/ws"])
def test_websocket_path_inside_the_assets_is_refused(path: str) -> None:
    text = MINIMAL.replace("      tls: {mode: letsencrypt}\n",
                           f"      tls: {{mode: letsencrypt}}\n      websocket_path: {path}\n")
    first = assert_one_line_problem(text, line_with(text, "  prod:"), "environments.prod",
                                    f"nginx.websocket_path '{path}' lies inside the assets "
                                    "location /assets/")
    assert first.endswith("use e.g. /ws"), first


def test_host_model_rejects_duplicate_roles() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Host(name="a", address="10.0.0.1", roles=["web", "web"])


# --- secrets ---------------------------------------------------------------------------


def test_secrets_environment_beats_file(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("A=from-file\nB=from-file-b\n# C=commented\n", encoding="utf-8")
    found = resolve_secrets(["A", "B", "C", "D"], file, {"A": "from-env", "D": "d-env"})
    assert found.values == {"A": "from-env", "B": "from-file-b", "D": "d-env"}
    assert found.missing == ["C"]
    assert found.source_file == file


def test_secrets_missing_are_listed_in_order(tmp_path: Path) -> None:
    found = resolve_secrets(["Z", "A", "M"], tmp_path / "absent.env", {"A": "x"})
    assert found.values == {"A": "x"}
    assert found.missing == ["Z", "M"]
    with pytest.raises(SecretError) as caught:
        found.require_all("production")
    message = caught.value.message
    assert "Z, M" in message and "'production'" in message and "absent.env" in message
    assert "\n" not in message


def test_secrets_empty_environment_value_falls_back_to_file(tmp_path: Path) -> None:
    file = tmp_path / "s.env"
    file.write_text("A=file\n", encoding="utf-8")
    assert resolve_secrets(["A"], file, {"A": ""}).values == {"A": "file"}


def test_secrets_all_present_require_all_is_quiet() -> None:
    SecretValues(values={"A": "x"}).require_all("production")


def test_mask_shows_length_only() -> None:
    assert mask("hunter2") == "****(7 chars)"
    assert "hunter2" not in mask("hunter2")
    assert mask("") == "****"


def test_parse_dotenv_syntax() -> None:
    text = (
        "# comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "  SPACED = padded  \n"
        "SINGLE='it''s raw \\n'\n"
        'DOUBLE="a \\"b\\" \\\\ c\\nd"\n'
        "EMPTY=\n"
        "EQUALS=a=b=c\n"
        "no equals sign here\n"
    )
    assert parse_dotenv(text) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "SINGLE": "it''s raw \\n",
        "DOUBLE": 'a "b" \\ c\nd',
        "EMPTY": "",
        "EQUALS": "a=b=c",
    }


TRICKY_VALUES = [
    "",
    "plain",
    "with space",
    " leading and trailing ",
    'double " quote',
    "single ' quote",
    "'fully single quoted'",
    '"fully double quoted"',
    "back\\slash",
    "ends with backslash\\",
    "\\n literally",
    "\\\\n double",
    "new\nline",
    "\n",
    "tab\there",
    "#not a comment",
    "a=b",
    "export X=1",
    "$HOME and ${VAR}",
    "unicode: пароль ✓",
    "https://user:p@ss@host:5432/db?x=1&y=2",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_",
]


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_dotenv_round_trip_table(value: str) -> None:
    line = f"KEY={dotenv_quote(value)}"
    assert "\n" not in line
    assert parse_dotenv(f"# header\n{line}\nOTHER=1\n") == {"KEY": value, "OTHER": "1"}


# Characters str.splitlines() treats as line ends besides \n.
LINE_BOUNDARIES = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("boundary", LINE_BOUNDARIES, ids=[hex(ord(c)) for c in LINE_BOUNDARIES])
def test_dotenv_round_trip_line_boundaries(boundary: str) -> None:
    value = f"before{boundary}after"
    line = f"KEY={dotenv_quote(value)}"
    # The written line is one line by any reader's count (\r is escaped, the rest quoted).
    assert "\n" not in line and "\r" not in line
    assert parse_dotenv(f"KEY={dotenv_quote(value)}\n") == {"KEY": value}
    assert parse_dotenv(f"# header\n{line}\nOTHER=1\n") == {"KEY": value, "OTHER": "1"}


def test_dotenv_round_trip_every_line_boundary_at_once() -> None:
    value = "".join(f"{i}{b}" for i, b in enumerate(LINE_BOUNDARIES)) + "\r\n\\r end\r"
    assert "\r" not in dotenv_quote(value) and "\n" not in dotenv_quote(value)
    assert parse_dotenv(f"KEY={dotenv_quote(value)}\n") == {"KEY": value}


def test_parse_dotenv_accepts_crlf_files() -> None:
    assert parse_dotenv('A=1\r\nB="x\\ry"\r\n') == {"A": "1", "B": "x\ry"}


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is optional
    given = None

if given is not None:

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",))
        )
    )
    def test_dotenv_round_trip_property(value: str) -> None:
        assert parse_dotenv(f"KEY={dotenv_quote(value)}\n") == {"KEY": value}

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet="abcXYZ019_./:@%+,-", min_size=0))
    def test_dotenv_safe_values_stay_bare(value: str) -> None:
        assert dotenv_quote(value) == value


# --- the CLI's handling of inventory problems ----------------------------------------------

SECRET_NAMES = [
    "SUPABASE_ANON_KEY", "NEXT_PUBLIC_SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY",
    "TELEGRAM_BOT_TOKEN", "GIGACHAT_AUTH_KEY",
]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"ADAPTO_INVENTORY", "ADAPTO_VERBOSE", *SECRET_NAMES}}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def adapto(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapto_ops", *args],
        cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=120,
    )


def write_bad(tmp_path: Path) -> Path:
    text = edit("      instances: 2\n", "      instances: two\n")
    text = edit("        mode: letsencrypt\n", "        mode: acme\n", text)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    return bad


def assert_clean_errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert line.startswith("error: "), line
    return lines


def test_cli_bad_inventory_exits_2_with_error_lines(tmp_path: Path) -> None:
    bad = write_bad(tmp_path)
    proc = adapto("render", "nginx", "-e", "production", "-i", str(bad), cwd=tmp_path)
    lines = assert_clean_errors(proc)
    assert proc.stdout == ""
    text = bad.read_text(encoding="utf-8")
    assert lines == [
        f"error: {bad}:{line_with(text, 'instances: two')}: {P}.backend.instances: "
        + lines[0].split(f"{P}.backend.instances: ", 1)[1],
        f"error: {bad}:{line_with(text, 'mode: acme')}: {P}.nginx.tls.mode: "
        + lines[1].split(f"{P}.nginx.tls.mode: ", 1)[1],
    ]


def test_cli_verbose_adds_a_traceback(tmp_path: Path) -> None:
    bad = write_bad(tmp_path)
    proc = adapto("render", "nginx", "-e", "production", "-i", str(bad), "--verbose",
                  cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert "InventoryError" in proc.stderr
    assert any(line.startswith(f"error: {bad}:") for line in proc.stderr.splitlines())


def test_cli_honours_adapto_inventory(tmp_path: Path) -> None:
    bad = write_bad(tmp_path)
    proc = adapto("render", "nginx", "-e", "production", cwd=tmp_path,
                  ADAPTO_INVENTORY=str(bad))
    lines = assert_clean_errors(proc)
    assert lines[0].startswith(f"error: {bad}:")

    good = tmp_path / "elsewhere" / "inv.yaml"
    good.parent.mkdir()
    shutil.copy(REPO / "inventory.yaml", good)
    proc = adapto("render", "nginx", "-e", "production", cwd=tmp_path,
                  ADAPTO_INVENTORY=str(good))
    assert proc.returncode == 0, proc.stderr
    assert "server_name adaptoai.ru;" in proc.stdout

    # -i wins over the environment variable.
    proc = adapto("render", "nginx", "-e", "production", "-i", str(good), cwd=tmp_path,
                  ADAPTO_INVENTORY=str(bad))
    assert proc.returncode == 0, proc.stderr


def test_cli_defaults_to_inventory_in_cwd(tmp_path: Path) -> None:
    # No inventory here: the platform's own (shipped with adapto) is used, and said so.
    proc = adapto("render", "nginx", "-e", "production", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note: no ./inventory.yaml here" in proc.stderr
    assert "server_name adaptoai.ru" in proc.stdout
    # One in the directory wins, silently.
    local = (REPO / "inventory.yaml").read_text().replace("adaptoai.ru", "example.org")
    (tmp_path / "inventory.yaml").write_text(local)
    proc = adapto("render", "nginx", "-e", "production", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note:" not in proc.stderr and "server_name example.org" in proc.stdout


def test_cli_missing_inventory_is_one_line(tmp_path: Path) -> None:
    proc = adapto("render", "nginx", "-e", "production", "-i", str(tmp_path / "none.yaml"),
                  cwd=tmp_path)
    lines = assert_clean_errors(proc)
    assert len(lines) == 1
    assert "none.yaml" in lines[0] and "adapto init" in lines[0]


def test_cli_unknown_environment(tmp_path: Path) -> None:
    proc = adapto("render", "nginx", "-e", "nosuch", "-i", str(REPO / "inventory.yaml"),
                  cwd=tmp_path)
    lines = assert_clean_errors(proc)
    assert len(lines) == 1
    assert "'nosuch'" in lines[0]
    assert "production" in lines[0] and "sandbox" in lines[0]


def test_cli_unknown_host(tmp_path: Path) -> None:
    proc = adapto("render", "nginx", "-e", "production", "--host", "nosuch",
                  "-i", str(REPO / "inventory.yaml"), cwd=tmp_path)
    lines = assert_clean_errors(proc)
    assert len(lines) == 1
    assert "'nosuch'" in lines[0] and "prod1" in lines[0]


def test_cli_address_unusable_after_substitution_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "addr.yaml"
    bad.write_text(edit("        address: 127.0.0.2\n", '        address: "1.2.3"\n'),
                   encoding="utf-8")
    proc = adapto("render", "nginx", "-e", "sandbox", "-i", str(bad), cwd=tmp_path)
    lines = assert_clean_errors(proc)
    assert proc.stdout == ""
    assert len(lines) == 1
    assert lines[0].startswith("error: host sandbox1: with {host}=sandbox1 and "
                               "{address}=1.2.3, "), lines[0]
    assert "'1.2.3' is not an IP address" in lines[0]


def test_cli_control_character_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "ctrl.yaml"
    bad.write_text(edit("project: ai-platform\n", "project: ai-platform\x07\n"), encoding="utf-8")
    proc = adapto("render", "nginx", "-e", "production", "-i", str(bad), cwd=tmp_path)
    lines = assert_clean_errors(proc)
    assert proc.stdout == ""
    assert len(lines) == 1
    assert re.match(rf"error: {re.escape(str(bad))}:5: character \S+ is not allowed in YAML\b",
                    lines[0]), lines[0]
