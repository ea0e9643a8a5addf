"""`adapto ssl status`: days left per server name, as served and as filed on the host.

The live side is health's own certificate check (verified against health.ca_file,
SNI per name); the file side is the host's facts (the certificate's end date) plus
the names the file covers. Both must be good: a renewed file nginx has not
reloaded, or a served certificate the file no longer matches, shows here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from adapto_ops.commands import certbot as cb
from adapto_ops.remote import Transport
from adapto_ops.render.configs import Target

_SAN = re.compile(r"DNS:([^,\s]+)")


@dataclass(frozen=True)
class DomainStatus:
    """One server name on one host."""

    host: str
    domain: str
    status: str  # pass | warn | fail
    live_days: float | None
    live: str  # what the live check said
    file_days: float | None
    file: str  # what the file check said
    path: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def file_names(text: str) -> list[str]:
    """DNS names of `openssl x509 -ext subjectAltName` output."""
    return _SAN.findall(text)


def _worst(*statuses: str) -> str:
    order = {"pass": 0, "warn": 1, "fail": 2}
    return max(statuses, key=lambda s: order.get(s, 2))


def host_status(t: Transport, target: Target, token: str | None, env_name: str,
                many_hosts: bool) -> list[DomainStatus]:
    """Every server name of ``target``'s site, live and on file."""
    from adapto_ops.facts import gather
    from adapto_ops.health.classify import NextCommands
    from adapto_ops.health.local import Site, check_certificate, ssl_name_matches

    env, nginx = target.env, target.env.nginx
    warn_days = env.health.certificate_warn_days
    facts = gather(t, target)
    covered = file_names(t.run(cb.file_dates(nginx.certificate_path), check=False,
                               mutates=False, what="read certificate names").stdout)
    file_days = facts.certificate.days_left()
    site = Site.of(target, token, NextCommands(env_name, target.host.name, many_hosts,
                                               env.sandbox is not None))
    rows = []
    for domain in nginx.server_names:
        live = check_certificate(dataclasses.replace(site, name=domain))[0]
        if file_days is None:
            file_status, file_text = "fail", f"unreadable: {facts.certificate.error}"
        elif not any(ssl_name_matches(p, domain) for p in covered):
            file_status, file_text = "fail", f"does not cover {domain} ({', '.join(covered)})"
        elif file_days <= 0:
            file_status, file_text = "fail", f"expired {-file_days:.0f} day(s) ago"
        elif file_days < warn_days:
            file_status, file_text = "warn", f"expires in {file_days:.0f} day(s)"
        else:
            file_status, file_text = "pass", f"valid until {facts.certificate.not_after:%Y-%m-%d}"
        live_days = live.observed_value if isinstance(live.observed_value, (int, float)) else None
        rows.append(DomainStatus(
            target.host.name, domain, _worst(live.status, file_status),
            round(float(live_days), 1) if live_days is not None else None, live.output,
            round(file_days, 1) if file_days is not None else None, file_text,
            nginx.certificate_path))
    return rows
