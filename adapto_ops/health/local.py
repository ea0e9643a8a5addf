"""Checks from where adapto runs: what a user's browser sees, certificates verified.

Each check connects to the host's address but speaks to the site by its
canonical name (SNI and Host), so DNS plays no part and a sandbox on loopback
is checked exactly as the live site would be. Certificates are verified
against ``health.ca_file`` (the sandbox's CA) or the system's trust store.
"""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from adapto_ops.health.classify import (
    NextCommands,
    error_kind,
    http_kind,
    http_output,
    trim,
)
from adapto_ops.health.model import CheckResult, Observed, Status
from adapto_ops.render.configs import Target

PROBE_HEADER = "X-Adapto-Probe"
USER_AGENT = "adapto-health"


@dataclass(frozen=True)
class Site:
    """One host's site as the local checks reach it."""

    host: str
    address: str  # where to connect (IPv6 without brackets)
    name: str  # the canonical server name: SNI and Host
    http_port: int
    https_port: int
    health_path: str
    websocket_path: str
    api_budget_ms: int
    page_budget_ms: int
    timeout_s: float
    warn_days: int
    ca_file: str | None
    token: str | None
    next: NextCommands

    @classmethod
    def of(cls, target: Target, token: str | None, next_commands: NextCommands) -> Site:
        """The site of ``target``'s host, probed with ``token``."""
        env = target.env
        return cls(target.host.name, target.host.address.strip("[]"), env.nginx.canonical_name,
                   env.nginx.http_port, env.nginx.https_port, env.backend.health_path,
                   env.nginx.websocket_path, env.health.api_budget_ms,
                   env.health.page_budget_ms, env.health.timeout_s,
                   env.health.certificate_warn_days, env.health.ca_file, token, next_commands)

    def origin(self, scheme: str = "https") -> str:
        """Where to connect: the host's address and the scheme's port."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{scheme}://{host}:{self.https_port if scheme == 'https' else self.http_port}"

    def public_url(self, path: str, scheme: str = "https") -> str:
        """The URL a user would type (shown in reports; we connect to ``address``)."""
        port = self.https_port if scheme in ("https", "wss") else self.http_port
        default = {"https": 443, "wss": 443, "http": 80}[scheme]
        return f"{scheme}://{self.name}{'' if port == default else f':{port}'}{path}"

    def headers(self) -> dict[str, str]:
        """Host, our user agent and, when the environment has one, the probe token."""
        return {"Host": self.name, "User-Agent": USER_AGENT,
                **({PROBE_HEADER: self.token} if self.token else {})}

    def result(self, component: str, measurement: str, name: str, status: Status, *,
               value: Observed = None, unit: str | None = None, output: str = "",
               kind: str | None = None, ms: float | None = None,
               endpoint: str | None = None) -> CheckResult:
        """A result of this site; failures and warnings get their next command."""
        next_command = self.next.for_kind(kind, component) if status != "pass" and kind else None
        return CheckResult(self.host, component, measurement, name, status, value, unit,
                           output, kind if status != "pass" else None, next_command, ms,
                           endpoint=endpoint)


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_file`` (or the system's store)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else \
        ssl.create_default_context()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def failure_reason(exc: BaseException) -> str:
    """The root cause of a failed connection, in a few words."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate not trusted: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return f"TLS: {seen.reason or seen}"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, (TimeoutError, socket.timeout)):
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    text = str(exc) or type(exc).__name__
    if "timed out" in text.lower() or type(exc).__name__.endswith("Timeout"):
        return "timed out"
    return trim(text)


# --- the certificate ---------------------------------------------------------------------


def describe_certificate(der: bytes, name: str, now: dt.datetime | None = None) -> str:
    """Why a certificate fails verification, as far as it shows on its face."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    now = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < now:
        days = (now - cert.not_valid_after_utc).days
        return f"expired {days} day(s) ago ({cert.not_valid_after_utc:%Y-%m-%d})"
    if cert.not_valid_before_utc > now:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if names and not any(ssl_name_matches(pattern, name) for pattern in names):
        return f"certificate is for {', '.join(names[:3])}, not {name}"
    return f"unknown issuer {cert.issuer.rfc4514_string()}"


def ssl_name_matches(pattern: str, name: str) -> bool:
    """A certificate's DNS name (maybe *.wildcard) covers ``name``."""
    if pattern.startswith("*."):
        return name.count(".") == pattern.count(".") and name.endswith(pattern[1:])
    return pattern.lower() == name.lower()


def _peer_der(site: Site, context: ssl.SSLContext) -> bytes:
    with socket.create_connection((site.address, site.https_port), site.timeout_s) as raw, \
            context.wrap_socket(raw, server_hostname=site.name) as tls:
        return tls.getpeercert(binary_form=True) or b""


def check_certificate(site: Site) -> list[CheckResult]:
    """Days left on the certificate nginx serves for the site's name, verified."""
    from cryptography import x509

    started = time.perf_counter()
    endpoint = site.public_url("/")

    def result(status: Status, output: str, value: Observed = None, kind: str | None = "tls") \
            -> list[CheckResult]:
        return [site.result("certificate", "daysLeft", "certificate", status, value=value,
                            unit="d", output=output, kind=kind, ms=_ms(started),
                            endpoint=endpoint)]

    try:
        der = _peer_der(site, ssl_context(site.ca_file))
    except ssl.SSLCertVerificationError as exc:
        try:  # read it again without verifying, only to say what is wrong with it
            unverified = ssl.create_default_context()
            unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
            der = _peer_der(site, unverified)
            why = describe_certificate(der, site.name)
            left = (x509.load_der_x509_certificate(der).not_valid_after_utc
                    - dt.datetime.now(dt.UTC)).total_seconds() / 86400
        except (OSError, ValueError):
            why, left = str(exc.verify_message), None
        return result("fail", f"{why} ({exc.verify_message})" if why != exc.verify_message
                      else why, round(left, 1) if left is not None else None)
    except (OSError, ssl.SSLError) as exc:
        reason = failure_reason(exc)
        return result("fail", reason, kind=error_kind(reason))
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    days = round((not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400, 1)
    if days < site.warn_days:
        return result("warn", f"expires in {days:.0f} day(s) ({not_after:%Y-%m-%d}); "
                      f"renew before {site.warn_days}", days)
    return result("pass", f"valid until {not_after:%Y-%m-%d}", days, kind=None)


# --- HTTP ------------------------------------------------------------------------------------


def _client(site: Site) -> Any:
    import httpx

    return httpx.Client(verify=ssl_context(site.ca_file), timeout=site.timeout_s,
                        trust_env=False, follow_redirects=False)


def _get(site: Site, path: str, scheme: str = "https") -> tuple[Any, float]:
    with _client(site) as client:
        started = time.perf_counter()
        response = client.get(f"{site.origin(scheme)}{path}", headers=site.headers(),
                              extensions={"sni_hostname": site.name})
        return response, _ms(started)


def _timed(site: Site, component: str, name: str, path: str, budget_ms: int,
           extra: Callable[[Any], list[CheckResult]] | None = None) -> list[CheckResult]:
    import httpx

    endpoint = site.public_url(path)
    started = time.perf_counter()
    try:
        response, ms = _get(site, path)
    except httpx.HTTPError as exc:
        reason = failure_reason(exc)
        failed = site.result(component, "responseTime", name, "fail", unit="ms", output=reason,
                             kind=error_kind(reason), ms=_ms(started), endpoint=endpoint)
        return [failed] + (extra(None) if extra else [])

    def result(status: Status, output: str, kind: str | None) -> CheckResult:
        return site.result(component, "responseTime", name, status, value=ms, unit="ms",
                           output=output, kind=kind, ms=ms, endpoint=endpoint)

    if response.status_code != 200:
        found = result("fail", http_output(response.status_code, response.text),
                       http_kind(response.status_code, response.text))
    elif ms > budget_ms:
        found = result("warn", f"{ms:.0f} ms > budget {budget_ms} ms", "slow")
    else:
        found = result("pass", _summary(response), None)
    return [found] + (extra(response) if extra else [])


def _summary(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    release = data.get("release") if isinstance(data, dict) else None
    return f"HTTP 200, release {release}" if release else "HTTP 200"


def check_api(site: Site) -> list[CheckResult]:
    """/api/health through nginx over HTTPS, against the API budget."""
    return _timed(site, "api", "api", site.health_path, site.api_budget_ms)


def check_page(site: Site) -> list[CheckResult]:
    """/ through nginx over HTTPS, against the page budget; and HSTS on that answer."""

    def hsts(response: Any) -> list[CheckResult]:
        endpoint = site.public_url("/")
        if response is None:
            return [site.result("hsts", "present", "hsts", "fail", output="no HTTPS answer",
                                kind="network", endpoint=endpoint)]
        value = response.headers.get("strict-transport-security")
        if value and "max-age=" in value:
            return [site.result("hsts", "present", "hsts", "pass", value=True,
                                output=trim(value), endpoint=endpoint)]
        return [site.result("hsts", "present", "hsts", "fail", value=False,
                            output="no Strict-Transport-Security header", kind="config",
                            endpoint=endpoint)]

    return _timed(site, "page", "page", "/", site.page_budget_ms, hsts)


def check_redirect(site: Site) -> list[CheckResult]:
    """Plain HTTP answers 301 to the HTTPS address."""
    import httpx

    endpoint = site.public_url("/", "http")
    started = time.perf_counter()
    try:
        response, ms = _get(site, "/", "http")
    except httpx.HTTPError as exc:
        reason = failure_reason(exc)
        return [site.result("http", "redirect", "http -> https", "fail", output=reason,
                            kind=error_kind(reason), ms=_ms(started), endpoint=endpoint)]
    location = response.headers.get("location", "")
    if response.status_code == 301 and location.startswith("https://"):
        return [site.result("http", "redirect", "http -> https", "pass", value=301,
                            output=f"301 -> {trim(location, 80)}", ms=ms, endpoint=endpoint)]
    output = http_output(response.status_code, response.text)
    return [site.result("http", "redirect", "http -> https", "fail",
                        value=response.status_code, output=f"{output} (expected 301 to https)",
                        kind="config", ms=ms, endpoint=endpoint)]


# --- WebSocket --------------------------------------------------------------------------------


def check_websocket(site: Site) -> list[CheckResult]:
    """A WebSocket handshake through nginx and one message echoed back."""
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    endpoint = site.public_url(site.websocket_path, "wss")
    started = time.perf_counter()

    def result(status: Status, output: str, kind: str | None = "websocket") -> list[CheckResult]:
        ms = _ms(started)
        return [site.result("websocket", "roundTrip", "websocket", status,
                            value=ms if status == "pass" else None, unit="ms", output=output,
                            kind=kind, ms=ms, endpoint=endpoint)]

    nonce = f"adapto-health-{secrets.token_hex(6)}"
    extra = {k: v for k, v in site.headers().items() if k not in ("Host", "User-Agent")}
    try:
        sock = socket.create_connection((site.address, site.https_port), site.timeout_s)
    except OSError as exc:
        reason = failure_reason(exc)
        return result("fail", reason, error_kind(reason))
    try:
        with connect(endpoint, sock=sock, ssl=ssl_context(site.ca_file),
                     server_hostname=site.name, additional_headers=extra,
                     open_timeout=site.timeout_s, close_timeout=1,
                     user_agent_header=USER_AGENT) as ws:
            ws.send(nonce)
            deadline = time.monotonic() + site.timeout_s
            while time.monotonic() < deadline:  # a greeting may come before the echo
                if ws.recv(timeout=max(0.01, deadline - time.monotonic())) == nonce:
                    return result("pass", "handshake + echo", None)
            return result("fail", f"no echo within {site.timeout_s:.0f}s")
    except InvalidStatus as exc:
        code = exc.response.status_code
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        kind = "rate-limited" if code == 429 else "websocket"
        return result("fail", f"handshake: {http_output(code, body)}", kind)
    except TimeoutError:
        return result("fail", f"no echo within {site.timeout_s:.0f}s")
    except (OSError, ssl.SSLError, WebSocketException) as exc:
        reason = failure_reason(exc)
        kind = "tls" if error_kind(reason) == "tls" else "websocket"
        return result("fail", reason, kind)
    finally:
        sock.close()


def local_checks(site: Site) -> list[Callable[[], list[CheckResult]]]:
    """Every check from here for one site, each runnable in a thread of its own."""
    return [partial(check, site) for check in
            (check_certificate, check_redirect, check_page, check_api, check_websocket)]
