"""Why a connection failed, in a few words a user can act on (no Home Assistant imports).

aiohttp's own messages carry Python reprs (``ssl:<ssl.SSLContext object at
0x7f...>``); these sentences never do.
"""

from __future__ import annotations

import os
import ssl

import aiohttp


def is_certificate_error(err: BaseException) -> bool:
    """Whether the server's TLS certificate was not trusted."""
    return isinstance(
        err,
        aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError,
    )


def describe_connection_error(err: BaseException) -> str:
    """A short reason for a failed request, e.g. ``connection refused``."""
    if isinstance(err, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time"
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        reason = getattr(err.certificate_error, "verify_message", None) or "not trusted"
        return f"its TLS certificate is not trusted ({reason})"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({err.verify_message})"
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return "the host name was not found"
    if isinstance(err, aiohttp.ClientConnectorSSLError):
        return "the TLS handshake failed"
    if isinstance(err, aiohttp.ClientConnectorError):
        return _os_reason(err.os_error)
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(err, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(err, aiohttp.InvalidURL):
        return "the address is not a valid URL"
    if isinstance(err, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(err, ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(err, OSError):
        return _os_reason(err)
    return "the connection failed"


def _os_reason(err: OSError) -> str:
    """``connection refused`` from the errno (asyncio's own texts name addresses)."""
    reason = os.strerror(err.errno) if err.errno else "the connection failed"
    return reason[:1].lower() + reason[1:]
