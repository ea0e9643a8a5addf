"""The certificate nginx serves, read by a TLS handshake with the site's name as SNI."""

from __future__ import annotations

import socket
import ssl

from adapto_ops.render.configs import Target


def served_der(target: Target, name: str, timeout_s: float = 10.0) -> bytes:
    """The leaf nginx presents for ``name`` on the host's HTTPS port, unverified (this is
    to compare it with a file, not to trust it; `health` and `ssl status` verify)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    address = target.host.address.strip("[]")
    with socket.create_connection((address, target.env.nginx.https_port), timeout_s) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError(f"{address}: no certificate in the handshake")
    return der
