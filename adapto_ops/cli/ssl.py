"""ssl status|issue|renew|install|self-signed: the site's certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapto_ops.cli.common import (
    DryRunOpt,
    EnvOpt,
    HostOpt,
    InventoryOpt,
    JsonObjectOpt,
    JsonOpt,
    VerboseOpt,
    YesOpt,
    app,
    run_procedure,
    sub_app,
)

ssl_app = sub_app(
    "The site's TLS certificate: days left, certbot (ACME) issue and renewal, a provided "
    "or self-signed pair. Example: adapto ssl status -e production",
)
app.add_typer(ssl_app, name="ssl")


def _change(action: str, **kwargs: object) -> None:
    run_procedure("adapto_ops.procedures.ssl", "run_change", action=action, **kwargs)


@ssl_app.command("status")
def ssl_status(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Days left per server name: as nginx serves it (verified, SNI) and as filed on the host.

    Exit 1 if a certificate is expired, missing, untrusted or does not cover a name; a
    warning under health.certificate_warn_days (14). Example: adapto ssl status -e production
    """
    run_procedure("adapto_ops.procedures.ssl", "run_status", inventory=inventory,
                  env_name=env, hosts=host, as_json=json_output)


@ssl_app.command("issue")
def ssl_issue(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    staging: Annotated[bool, typer.Option(
        "--staging", help="Let's Encrypt's staging CA (untrusted certificates, high limits)")
    ] = False,
    email: Annotated[str | None, typer.Option(
        "--email", help="ACME account email [default: nginx.tls.email]")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="issue again even if the current certificate is not due")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """certbot in webroot mode through nginx's ACME location (tls.mode letsencrypt).

    Then the site config on certbot's live files, nginx -t and a reload, a deploy hook that
    reloads nginx after each renewal, and a systemd timer (or cron entry) that renews
    unattended. Example: adapto ssl issue -e production --staging
    """
    _change("issue", inventory=inventory, env_name=env, hosts=host, dry_run=dry_run, yes=yes,
            as_json=json_output, staging=staging, email=email, force=force)


@ssl_app.command("renew")
def ssl_renew(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    force_renewal: Annotated[bool, typer.Option(
        "--force-renewal", help="renew even if not due (counts toward rate limits)")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """certbot renew; the deploy hook reloads nginx; checks nginx serves the new certificate.

    Example: adapto ssl renew -e production --force-renewal
    """
    _change("renew", inventory=inventory, env_name=env, hosts=host, dry_run=dry_run, yes=yes,
            as_json=json_output, force=force_renewal)


@ssl_app.command("install")
def ssl_install(
    env: EnvOpt = ...,  # type: ignore[assignment]
    cert: Annotated[Path, typer.Option("--cert", metavar="FILE",
                                       help="certificate chain (PEM, leaf first)")] = ...,  # type: ignore[assignment]
    key: Annotated[Path, typer.Option("--key", metavar="FILE", help="its private key (PEM)")]
    = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Upload a provided pair to tls.certificate / certificate_key (key mode 0600).

    Refused, with nothing uploaded, unless the key matches the certificate, the chain links
    up and its names cover every server name. Example: adapto ssl install -e production
    --cert site.pem --key site.key
    """
    _change("install", inventory=inventory, env_name=env, hosts=host, dry_run=dry_run, yes=yes,
            as_json=json_output, cert=cert, key=key)


@ssl_app.command("self-signed")
def ssl_self_signed(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    days: Annotated[int, typer.Option("--days", min=1, max=825, help="validity")] = 30,
    force: Annotated[bool, typer.Option(
        "--force", help="also where tls.mode is 'provided' or the env is not a sandbox")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """A new certificate for the site's names (signed by the sandbox CA in a sandbox).

    Refused where tls.mode is letsencrypt (certbot's files). Example: adapto ssl self-signed
    -e sandbox
    """
    _change("self-signed", inventory=inventory, env_name=env, hosts=host, dry_run=dry_run,
            yes=yes, as_json=json_output, days=days, force=force)
