"""HTTP transport for ACME: directory, nonces, signed POSTs and error decoding.

It uses an injected ``aiohttp.ClientSession`` (never closed here), sends a
``User-Agent`` on every request, applies a per-request timeout, keeps the
``Replay-Nonce`` of every response, retries ``badNonce`` rejections and caps
the size of response bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
import json
import logging
import os
import re
import ssl
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from custom_components.secure_remote_access.protocol.connection import (
    describe_connection_error,
    is_certificate_error,
)

from .errors import (
    AcmeCaBundleError,
    AcmeCertificateError,
    AcmeConnectionError,
    AcmeError,
    AcmeProblemError,
    AcmeTimeoutError,
    BadNonceError,
    MalformedResponseError,
    ServiceUnavailableError,
    one_line,
    parse_retry_after,
    problem_from_json,
)
from .jws import AccountKey, sign_request
from .messages import Directory

_LOGGER = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT: Final = 30.0
# Pebble rejects 5 % of nonces by default, our fault tests 50 %: 20 tries leave
# a one-in-a-million chance; each retry is one cheap request with a fresh nonce.
MAX_BAD_NONCE_TRIES: Final = 20
# Certificate chains and ACME objects are a few kilobytes; more is not ACME.
MAX_RESPONSE_BYTES: Final = 1024 * 1024
JOSE_CONTENT_TYPE: Final = "application/jose+json"
_NONCE_RE: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_LINK_RE: Final = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL_RE: Final = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AcmeResponse:
    """A finished HTTP response from the ACME server."""

    status: int
    url: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object."""
        try:
            data = json.loads(self.body)
        except ValueError as err:
            raise MalformedResponseError(f"{self.url} did not return JSON") from err
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{self.url} did not return a JSON object")
        return data

    @property
    def location(self) -> str | None:
        """The absolute ``Location`` header, if any."""
        value = self.headers.get("Location")
        return urljoin(self.url, value) if value else None

    @property
    def retry_after(self) -> datetime | None:
        """The ``Retry-After`` header as an aware UTC time, if any."""
        return parse_retry_after(self.headers.get("Retry-After"))

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def links(self, rel: str) -> list[str]:
        """Absolute targets of the ``Link`` headers with the given relation."""
        found: list[str] = []
        for header in self.headers.getall("Link", []):
            for match in _LINK_RE.finditer(header):
                for rel_match in _REL_RE.finditer(match.group(2)):
                    relations = (rel_match.group(1) or rel_match.group(2) or "").split()
                    if rel in relations:
                        found.append(urljoin(self.url, match.group(1)))
        return found


def _where(url: str) -> str:
    """``host:port`` of a URL, for messages."""
    parsed = urlsplit(url)
    return parsed.netloc or url


async def _read_capped(resp: aiohttp.ClientResponse, what: str) -> bytes:
    """The whole body, or MalformedResponseError beyond MAX_RESPONSE_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise MalformedResponseError(
                f"{what} returned more than {MAX_RESPONSE_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def error_from_response(response: AcmeResponse) -> AcmeProblemError:
    """Build the typed error for a 4xx/5xx response."""
    retry_after = response.retry_after
    data: Any = None
    try:
        data = json.loads(response.body) if response.body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and (
        "type" in data or response.content_type.endswith("json")
    ):
        return problem_from_json(data, status=response.status, retry_after=retry_after)
    snippet = one_line(response.body[:200].decode("utf-8", "replace"))
    detail = f"HTTP {response.status}" + (f": {snippet}" if snippet else "")
    cls = ServiceUnavailableError if response.status == 503 else AcmeProblemError
    return cls("about:blank", detail, status=response.status, retry_after=retry_after)


class AcmeTransport:
    """Talks HTTP to one ACME server."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        directory_url: str,
        *,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_bad_nonce_tries: int = MAX_BAD_NONCE_TRIES,
    ) -> None:
        """Prepare the transport; nothing is sent until the first request."""
        if not user_agent:
            raise ValueError("a User-Agent is required")
        self._session = session
        self.directory_url = directory_url
        self._user_agent = user_agent
        self._ssl_context = ssl_context
        self._ca_bundle = ca_bundle
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_bad_nonce_tries = max(1, max_bad_nonce_tries)
        self._nonces: list[str] = []
        self._directory: Directory | None = None
        self._directory_lock = asyncio.Lock()

    async def _ssl(self) -> ssl.SSLContext | bool:
        """The TLS setting for requests: a private-CA context or default verification."""
        if self._ssl_context is None and self._ca_bundle is not None:
            cafile = os.fspath(self._ca_bundle)
            loop = asyncio.get_running_loop()
            try:
                self._ssl_context = await loop.run_in_executor(
                    None, lambda: ssl.create_default_context(cafile=cafile)
                )
            except ssl.SSLError as err:
                raise AcmeCaBundleError(
                    f"the CA bundle {cafile} holds no usable certificate"
                ) from err
            except OSError as err:
                raise AcmeCaBundleError(
                    f"the CA bundle {cafile} cannot be read: {err.strerror or err}"
                ) from err
        return self._ssl_context if self._ssl_context is not None else True

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> AcmeResponse:
        """Send one HTTP request and return the response, whatever its status."""
        headers = {"User-Agent": self._user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        ssl_setting = await self._ssl()
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                ssl=ssl_setting,
            ) as resp:
                payload = await _read_capped(resp, f"{method} {url}")
                response = AcmeResponse(
                    resp.status,
                    str(resp.url),
                    CIMultiDictProxy(CIMultiDict(resp.headers)),
                    payload,
                )
        except TimeoutError as err:
            raise AcmeTimeoutError(f"{_where(url)}: no answer in time") from err
        except aiohttp.ClientError as err:
            error = (
                AcmeCertificateError
                if is_certificate_error(err)
                else AcmeConnectionError
            )
            raise error(f"{_where(url)}: {describe_connection_error(err)}") from err
        nonce = response.headers.get("Replay-Nonce")
        if nonce and _NONCE_RE.match(nonce):
            self._nonces.append(nonce)
        _LOGGER.debug("%s %s -> %s", method, url, response.status)
        return response

    async def get(self, url: str) -> AcmeResponse:
        """Unauthenticated GET; raises the typed error for 4xx/5xx."""
        response = await self.request("GET", url)
        if response.status >= 400:
            raise error_from_response(response)
        return response

    async def directory(self) -> Directory:
        """Fetch the directory once and cache it."""
        async with self._directory_lock:
            if self._directory is None:
                response = await self.get(self.directory_url)
                self._directory = Directory.from_json(response.json())
            return self._directory

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.pop()
        directory = await self.directory()
        response = await self.request("HEAD", directory.new_nonce)
        if response.status >= 400:
            raise error_from_response(response)
        if not self._nonces:
            raise MalformedResponseError("newNonce returned no Replay-Nonce")
        return self._nonces.pop()

    async def post(
        self,
        url: str,
        payload: Mapping[str, Any] | None,
        *,
        key: AccountKey,
        kid: str | None,
    ) -> AcmeResponse:
        """Signed POST (``payload=None``: POST-as-GET); retries ``badNonce``."""
        last_error: AcmeError | None = None
        for attempt in range(self._max_bad_nonce_tries):
            nonce = await self._nonce()
            body = sign_request(key, url, payload, nonce=nonce, kid=kid)
            response = await self.request(
                "POST", url, body=body, content_type=JOSE_CONTENT_TYPE
            )
            if response.status < 400:
                return response
            error = error_from_response(response)
            if not isinstance(error, BadNonceError):
                raise error
            _LOGGER.debug("badNonce on %s (try %d), retrying", url, attempt + 1)
            last_error = error
        assert last_error is not None
        raise last_error
