"""TLS for the agent: its data plane's certificate, and whom it trusts as a client.

`--ca-file` replaces the system's trust store for every connection the agent opens (the
control plane, next hops, probes): a fleet on a private CA trusts that CA and nothing else.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it."""


def client_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What httpx's `verify=` takes: the CA bundle's context, or True (the system's)."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"--ca-file {ca_file}: {_reason(exc)}") from None


def check_server_pair(cert: Path, key: Path) -> None:
    """Load the pair once at start, so a wrong file fails with one line, not in uvicorn."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"--tls-cert {cert} / --tls-key {key}: {_reason(exc)}") from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)
