"""`adapto ssl` without a server: certbot/openssl command text, ACME error lines, pair checks.

The shell pieces that move files (the pair swap with nginx -t) run here with sh in a
temporary folder, a fake `nginx -t` deciding, so their effect on files is checked for real.
"""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapto_ops.certs.acme import parse_failure
from adapto_ops.certs.pair import check_pair
from adapto_ops.certs.status import file_names
from adapto_ops.commands import certbot as cb
from adapto_ops.errors import AdaptoError
from adapto_ops.inventory.model import Nginx
from adapto_ops.tls import write_ca, write_self_signed, write_signed

REPO = Path(__file__).resolve().parent.parent


def nginx(**tls: object) -> Nginx:
    return Nginx.model_validate({
        "server_names": ["shop.example.com", "www.shop.example.com"],
        "tls": {"mode": "letsencrypt", **tls}, "control": "systemd"})


def signal_nginx(**tls: object) -> Nginx:
    return Nginx.model_validate({
        "server_names": ["shop.example.com"], "control": "signal", "prefix": "/srv/ngx",
        "tls": {"mode": "letsencrypt", "certbot_dir": "/srv/le", **tls}})


# --- certbot commands -----------------------------------------------------------------------


def test_certonly_webroot_every_name_hook_and_email() -> None:
    argv = shlex.split(cb.certonly(nginx(email="ops@shop.example.com")))
    assert argv[:2] == ["certbot", "certonly"]
    assert "--non-interactive" in argv and "--agree-tos" in argv
    assert argv[argv.index("-w") + 1] == "/var/www/letsencrypt" and "--webroot" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-d"] == [
        "shop.example.com", "www.shop.example.com"]
    assert argv[argv.index("--cert-name") + 1] == "shop.example.com"
    assert argv[argv.index("--email") + 1] == "ops@shop.example.com"
    assert argv[argv.index("--deploy-hook") + 1] == "/etc/letsencrypt/adapto-nginx-reload.sh"
    assert "--keep-until-expiring" in argv and "--force-renewal" not in argv
    # The system's certbot folders stay implicit; no ACME server: Let's Encrypt's own.
    assert "--config-dir" not in argv and "--server" not in argv


def test_certonly_staging_force_and_no_email() -> None:
    argv = shlex.split(cb.certonly(nginx(), staging=True, force=True))
    assert argv[argv.index("--server") + 1] == cb.LETSENCRYPT_STAGING
    assert "--force-renewal" in argv and "--keep-until-expiring" not in argv
    assert "--register-unsafely-without-email" in argv
    argv = shlex.split(cb.certonly(nginx(email="inventory@x.y"), email="flag@x.y"))
    assert argv[argv.index("--email") + 1] == "flag@x.y"  # --email wins over the inventory


def test_own_acme_server_and_ca_and_dirs() -> None:
    n = signal_nginx(acme_server="https://127.0.0.142:14000/dir", acme_ca_file="/srv/ca.pem")
    command = cb.certonly(n, staging=True)
    assert command.startswith("REQUESTS_CA_BUNDLE=/srv/ca.pem certbot certonly ")
    argv = shlex.split(command.split(" ", 1)[1])
    # The inventory's server wins over --staging: it already is a test server.
    assert argv[argv.index("--server") + 1] == "https://127.0.0.142:14000/dir"
    assert argv[argv.index("--config-dir") + 1] == "/srv/le"
    assert argv[argv.index("--work-dir") + 1] == "/srv/le/work"
    assert argv[argv.index("--logs-dir") + 1] == "/srv/le/logs"
    assert n.certificate_path == "/srv/le/live/shop.example.com/fullchain.pem"
    assert n.certificate_key_path == "/srv/le/live/shop.example.com/privkey.pem"


def test_renew_command() -> None:
    argv = shlex.split(cb.renew(signal_nginx(), force=True))
    assert argv[:2] == ["certbot", "renew"] and "--force-renewal" in argv
    assert argv[argv.index("--cert-name") + 1] == "shop.example.com"
    assert "--no-random-sleep-on-renew" in argv
    assert "--force-renewal" not in cb.renew(signal_nginx())


def test_hook_tests_then_reloads_by_control() -> None:
    systemd = cb.hook_script(nginx())
    assert systemd.splitlines()[:1] == ["#!/bin/sh"] and "set -e" in systemd
    lines = systemd.splitlines()
    assert lines.index("nginx -t -q") < lines.index(
        "systemctl reload nginx || systemctl start nginx")
    signal = cb.hook_script(signal_nginx())
    assert "nginx -p /srv/ngx -c /srv/ngx/conf/nginx.conf -t -q" in signal
    assert "-s reload" in signal and "systemctl" not in signal


def test_cron_entry_and_its_command() -> None:
    text = cb.cron_entry(signal_nginx(acme_ca_file="/srv/ca.pem"))
    command = cb.cron_command(text)
    assert command == cb.renew(signal_nginx(acme_ca_file="/srv/ca.pem"))
    assert command and command.startswith("REQUESTS_CA_BUNDLE=/srv/ca.pem certbot renew")
    assert "17 3,15 * * * root " in text
    assert cb.cron_command("# nothing\nSHELL=/bin/sh\n") is None


def test_systemd_units_run_the_renew_command() -> None:
    units = cb.systemd_units(nginx())
    service = units[f"/etc/systemd/system/{cb.TIMER_UNIT}.service"]
    timer = units[f"/etc/systemd/system/{cb.TIMER_UNIT}.timer"]
    exec_line = next(ln for ln in service.splitlines() if ln.startswith("ExecStart="))
    assert shlex.split(exec_line.removeprefix("ExecStart="))[2] == cb.renew(nginx())
    assert "OnCalendar=" in timer and "Persistent=true" in timer
    assert "enable --now adapto-certbot-renew.timer" in cb.enable_timer()


def test_quoting_of_hostile_values() -> None:
    # Paths are refused by the inventory when they hold shell syntax; an email is free text.
    argv = shlex.split(cb.certonly(signal_nginx(email="o'hara; rm -rf /@x.y")))
    assert argv[argv.index("--email") + 1] == "o'hara; rm -rf /@x.y"


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize("accepted", [True, False])
def test_pair_swap_puts_old_files_back_when_nginx_refuses(tmp_path: Path, accepted: bool) -> None:
    live_cert, live_key = tmp_path / "c.pem", tmp_path / "k.pem"
    live_cert.write_text("old cert")
    live_key.write_text("old key")
    (tmp_path / "c.new").write_text("new cert")
    (tmp_path / "k.new").write_text("new key")
    test = "true" if accepted else "echo 'nginx: [emerg] bad key' >&2; false"
    result = sh(cb.served_paths_swap([(str(live_cert), str(tmp_path / "c.new")),
                                      (str(live_key), str(tmp_path / "k.new"))],
                                     f"sh -c {shlex.quote(test)}"), tmp_path)
    if accepted:
        assert result.returncode == 0, result.stderr
        assert (live_cert.read_text(), live_key.read_text()) == ("new cert", "new key")
    else:
        assert result.returncode == 3 and "[emerg] bad key" in result.stderr
        assert (live_cert.read_text(), live_key.read_text()) == ("old cert", "old key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pem", "k.pem"]


def test_write_file_mode_and_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "key.pem"
    result = subprocess.run(["sh", "-c", cb.write_file(str(target), "600")], input="secret",
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "secret" and target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["key.pem"]


def test_file_names_of_openssl_ext_output() -> None:
    text = ("notAfter=Dec  6 07:00:00 2031 GMT\nX509v3 Subject Alternative Name: \n"
            "    DNS:shop.example.com, DNS:www.shop.example.com, IP Address:127.0.0.1\n")
    assert file_names(text) == ["shop.example.com", "www.shop.example.com"]


# --- ACME errors in one line ------------------------------------------------------------


CHALLENGE_FAILED = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for shop.example.com

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate \
Authority reported these problems:
  Domain: shop.example.com
  Type:   dns
  Detail: DNS problem: NXDOMAIN looking up A for shop.example.com - check that a DNS record \
exists for this domain

Hint: The Certificate Authority failed to download the temporary challenge files created by \
Certbot.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org.
"""

RATE_LIMITED = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for shop.example.com
An unexpected error occurred:
urn:ietf:params:acme:error:rateLimited :: There were too many requests of a given type :: \
Error creating new order :: too many certificates (5) already issued for this exact set of \
domains in the last 168 hours: shop.example.com, retry after 2026-12-07T10:00:00Z
Ask for help or search for solutions at https://community.letsencrypt.org.
"""

UNREACHABLE = """\
An unexpected error occurred:
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='127.0.0.142', port=14999): \
Max retries exceeded with url: /dir (Caused by NewConnectionError(': Failed to establish a \
new connection: [Errno 111] Connection refused'))
"""


def test_dns_problem_named() -> None:
    problem = parse_failure(CHALLENGE_FAILED)
    assert (problem.kind, problem.domain) == ("dns", "shop.example.com")
    line = problem.line("https://acme-v02.api.letsencrypt.org/directory")
    assert "\n" not in line and line.startswith("ACME dns for shop.example.com: DNS problem")
    assert "NXDOMAIN looking up A for shop.example.com" in line


def test_rate_limit_named() -> None:
    problem = parse_failure(RATE_LIMITED)
    assert problem.kind == "rateLimited"
    line = problem.line("Let's Encrypt")
    assert line.startswith("ACME rateLimited: rate limit reached")
    assert "retry after 2026-12-07T10:00:00Z" in line and "\n" not in line


@pytest.mark.parametrize("kind", ["connection", "unauthorized", "caa", "incorrectResponse"])
def test_each_challenge_type(kind: str) -> None:
    text = CHALLENGE_FAILED.replace("Type:   dns", f"Type:   {kind}")
    problem = parse_failure(text)
    assert problem.kind == kind and problem.domain == "shop.example.com"


def test_unreachable_and_untrusted_server() -> None:
    assert parse_failure(UNREACHABLE).kind == "unreachable"
    assert "cannot reach the ACME server https://x/dir" in parse_failure(UNREACHABLE).line(
        "https://x/dir")
    untrusted = parse_failure("requests.exceptions.SSLError: ... certificate verify failed: "
                              "unable to get local issuer certificate")
    assert untrusted.kind == "untrusted" and "acme_ca_file" in untrusted.line("https://x/dir")


def test_unknown_failure_keeps_the_last_real_line() -> None:
    problem = parse_failure("Saving debug log to x\nThe webroot path does not exist\n"
                            "Ask for help or search for solutions at https://x\n")
    assert (problem.kind, problem.detail) == ("other", "The webroot path does not exist")
    assert parse_failure("").detail == "certbot failed without a message"


# --- provided pairs -----------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, Path]:
    write_ca("test CA", tmp_path / "ca.pem", tmp_path / "ca.key")
    return tmp_path / "ca.pem", tmp_path / "ca.key"


def pair(tmp_path: Path, ca: tuple[Path, Path], names: list[str], tag: str,
         **kwargs: object) -> tuple[bytes, bytes]:
    write_signed(names, tmp_path / f"{tag}.pem", tmp_path / f"{tag}.key", *ca,
                 **kwargs)  # type: ignore[arg-type]
    return (tmp_path / f"{tag}.pem").read_bytes(), (tmp_path / f"{tag}.key").read_bytes()


NAMES = ["shop.example.com", "www.shop.example.com"]


def test_good_pair_with_chain(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    cert, key = pair(tmp_path, ca, NAMES, "a")
    checked = check_pair(cert + ca[0].read_bytes(), key, NAMES)
    assert checked.names == NAMES and 29 < checked.days_left() < 31
    assert checked.cert_pem.count(b"BEGIN CERTIFICATE") == 2


def test_wildcard_covers(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    cert, key = pair(tmp_path, ca, ["shop.example.com", "*.shop.example.com"], "w")
    check_pair(cert, key, NAMES)


def test_key_of_another_certificate_refused(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    cert, _ = pair(tmp_path, ca, NAMES, "a")
    _, other_key = pair(tmp_path, ca, NAMES, "b")
    with pytest.raises(AdaptoError, match=r"^b\.key: the key does not match the certificate"):
        check_pair(cert, other_key, NAMES, cert_where="a.pem", key_where="b.key")


def test_uncovered_name_refused(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    cert, key = pair(tmp_path, ca, ["shop.example.com"], "a")
    with pytest.raises(AdaptoError, match=r"does not cover www\.shop\.example\.com"):
        check_pair(cert, key, NAMES)


def test_broken_chain_refused(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    cert, key = pair(tmp_path, ca, NAMES, "a")
    write_ca("another CA", tmp_path / "x.pem", tmp_path / "x.key")
    with pytest.raises(AdaptoError, match="the chain is broken"):
        check_pair(cert + (tmp_path / "x.pem").read_bytes(), key, NAMES)


def test_expired_and_garbage_refused(tmp_path: Path, ca: tuple[Path, Path]) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    cert, key = pair(tmp_path, ca, NAMES, "old", valid_from=past)
    with pytest.raises(AdaptoError, match="expired on"):
        check_pair(cert, key, NAMES)
    with pytest.raises(AdaptoError, match="not a PEM certificate"):
        check_pair(b"nope", key, NAMES)
    with pytest.raises(AdaptoError, match="not a PEM private key"):
        check_pair(cert, b"nope", NAMES)


def test_self_signed_pair_passes(tmp_path: Path) -> None:
    write_self_signed(NAMES, tmp_path / "s.pem", tmp_path / "s.key")
    check_pair((tmp_path / "s.pem").read_bytes(), (tmp_path / "s.key").read_bytes(), NAMES)


# --- the CLI, without a server ------------------------------------------------------------


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapto_ops", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def _inventory(tmp_path: Path, tls: dict[str, object]) -> Path:
    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    env = data["environments"]["production"]
    env["nginx"]["tls"] = tls
    data["environments"] = {"production": env}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_install_refuses_mismatch_before_connecting(tmp_path: Path,
                                                    ca: tuple[Path, Path]) -> None:
    inventory = _inventory(tmp_path, {"mode": "provided", "certificate": "/etc/ssl/s.pem",
                                      "certificate_key": "/etc/ssl/s.key"})
    names = yaml.safe_load(inventory.read_text())["environments"]["production"]["nginx"][
        "server_names"]
    pair(tmp_path, ca, names, "a")
    pair(tmp_path, ca, names, "b")
    # The production address is never contacted: the refusal comes before any connection.
    result = cli("ssl", "install", "-e", "production", "-i", str(inventory), "--cert",
                 str(tmp_path / "a.pem"), "--key", str(tmp_path / "b.key"), "--yes")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith(f"error: {tmp_path / 'b.key'}: the key does not match")


@pytest.mark.parametrize(("action", "mode", "words"), [
    ("issue", "provided", "`adapto ssl issue` needs letsencrypt"),
    ("renew", "self-signed", "`adapto ssl renew` needs letsencrypt"),
    ("self-signed", "letsencrypt", "certificate files are certbot's"),
])
def test_mode_mismatch_refused(tmp_path: Path, action: str, mode: str, words: str) -> None:
    tls: dict[str, object] = {"mode": mode}
    if mode == "provided":
        tls |= {"certificate": "/etc/ssl/s.pem", "certificate_key": "/etc/ssl/s.key"}
    inventory = _inventory(tmp_path, tls)
    result = cli("ssl", action, "-e", "production", "-i", str(inventory), "--yes")
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and result.stderr.count("error:") == 1


def test_help_lists_the_actions() -> None:
    result = cli("ssl", "--help")
    assert result.returncode == 0
    for action in ("status", "issue", "renew", "install", "self-signed"):
        assert action in result.stdout


def test_read_state_on_a_fresh_and_an_issued_host(tmp_path: Path) -> None:
    n = Nginx.model_validate({
        "server_names": ["shop.example.com"], "control": "signal", "prefix": str(tmp_path),
        "site_config": str(tmp_path / "site.conf"),
        "tls": {"mode": "letsencrypt", "certbot_dir": str(tmp_path / "le")}})

    def state() -> dict[str, str]:
        out = sh(cb.read_state(n), tmp_path).stdout.split()
        return dict(w.split("=", 1) for w in out)

    fresh = state()
    assert (fresh["lineage"], fresh["site"]) == ("no", "no")
    assert fresh["certbot"] in ("yes", "no") and fresh["init"] in ("systemd", "none")
    (tmp_path / "le" / "renewal").mkdir(parents=True)
    (tmp_path / "le" / "renewal" / "shop.example.com.conf").write_text("version = 2.1.0\n")
    (tmp_path / "site.conf").write_text("server {}\n")
    assert (state()["lineage"], state()["site"]) == ("yes", "yes")
    cert, key = cb.bootstrap_paths(n)
    assert cert == f"{tmp_path}/le/adapto-bootstrap/shop.example.com/cert.pem"
    assert key.endswith("/adapto-bootstrap/shop.example.com/key.pem")


def test_issue_on_several_web_hosts_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    env = data["environments"]["production"]
    env["nginx"]["tls"] = {"mode": "letsencrypt"}
    env["hosts"].append({**env["hosts"][0], "name": "web2", "address": "192.0.2.10",
                         "private_address": "192.0.2.10"})
    data["environments"] = {"production": env}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data))
    result = cli("ssl", "issue", "-e", "production", "-i", str(inventory), "--yes")
    assert result.returncode == 2, result.stderr
    assert "2 web hosts" in result.stderr and "--host NAME" in result.stderr
