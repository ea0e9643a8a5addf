"""certbot's failure output, read into the one line a person needs.

certbot prints the ACME server's problem documents in two shapes: per domain
("Domain: x / Type: dns / Detail: ...", for failed challenges) and as
``urn:ietf:params:acme:error:<type> :: <detail>`` (for orders refused outright,
rate limits among them). Transport failures toward the ACME server itself
(refused, untrusted certificate) carry no problem type at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

URN = "urn:ietf:params:acme:error:"
# What each problem type means for the operator (RFC 8555 §6.7 and Let's Encrypt's docs).
MEANINGS = {
    "rateLimited": "rate limit reached (wait until it resets, or test with --staging)",
    "dns": "DNS problem: the ACME server cannot resolve the name",
    "connection": "the ACME server could not connect to the site to validate",
    "unauthorized": "validation failed: the challenge file was not served for the name",
    "incorrectResponse": "validation failed: the site answered the challenge wrongly",
    "tls": "the ACME server's TLS connection to the site failed",
    "caa": "a CAA record forbids this CA to issue for the name",
    "rejectedIdentifier": "the ACME server will not issue for this name",
    "malformed": "the ACME server rejected the request as malformed",
    "badNonce": "the ACME server rejected a nonce (retry)",
    "accountDoesNotExist": "the ACME account is unknown to the server",
    "externalAccount": "the ACME server requires external account binding",
    "serverInternal": "the ACME server failed internally (retry later)",
}
_TYPE_LINE = re.compile(r"^\s*Type:\s*(\S+)\s*$")
_DOMAIN_LINE = re.compile(r"^\s*Domain:\s*(\S+)\s*$")
_DETAIL_LINE = re.compile(r"^\s*Detail:\s*(.+?)\s*$")
_URN = re.compile(re.escape(URN) + r"([A-Za-z]+)(?:\s*::\s*(.+))?")


@dataclass(frozen=True)
class AcmeProblem:
    """The first problem certbot reported."""

    kind: str  # an ACME error type (dns, rateLimited, ...), or unreachable / untrusted / other
    detail: str
    domain: str | None = None

    def line(self, server: str) -> str:
        """One line: what kind, for which name, what the server said."""
        meaning = MEANINGS.get(self.kind)
        if self.kind == "unreachable":
            meaning = f"cannot reach the ACME server {server}"
        elif self.kind == "untrusted":
            meaning = (f"the ACME server {server} presents a certificate this host does not "
                       "trust (set nginx.tls.acme_ca_file)")
        head = f"ACME {self.kind}" + (f" for {self.domain}" if self.domain else "")
        parts = [head, meaning or "", self.detail]
        return ": ".join(p for p in parts if p)


def _clip(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_failure(output: str) -> AcmeProblem:
    """The problem in certbot's stdout+stderr (never raises; 'other' with the last line)."""
    lines = output.splitlines()
    domain = None
    for i, line in enumerate(lines):
        if m := _DOMAIN_LINE.match(line):
            domain = m.group(1)
        elif (m := _TYPE_LINE.match(line)) and domain:
            detail = next((d.group(1) for d in map(_DETAIL_LINE.match, lines[i + 1:i + 4]) if d),
                          "")
            return AcmeProblem(m.group(1), _clip(detail), domain)
    for line in lines:
        if m := _URN.search(line):
            return AcmeProblem(m.group(1), _clip(m.group(2) or ""))
    text = output.lower()
    if "certificate verify failed" in text or "sslerror" in text:
        return AcmeProblem("untrusted", "")
    if any(s in text for s in ("connection refused", "max retries exceeded",
                               "name or service not known", "failed to establish")):
        return AcmeProblem("unreachable", _clip(_last(lines, ("Errno", "refused")) or ""))
    return AcmeProblem("other", _clip(_last(lines, ()) or "certbot failed without a message"))


def _last(lines: list[str], prefer: tuple[str, ...]) -> str | None:
    useful = [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("Saving debug",
                                                                            "Ask for help",
                                                                            "See the logfile"))]
    for line in useful:
        if prefer and any(p in line for p in prefer):
            return line
    return useful[-1] if useful else None
