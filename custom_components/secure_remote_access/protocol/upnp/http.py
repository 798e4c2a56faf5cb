"""The router's HTTP answers, bounded and decoded before any XML is parsed.

No Home Assistant imports. A router's description and SOAP answers are a
few KiB of UTF-8; real ones also come without a charset, in ISO-8859-1,
with a byte order mark, and broken ones come huge or nested without end.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
import contextlib
import re
from typing import Final
from urllib.parse import urlsplit
from xml.parsers import expat

import aiohttp
from async_upnp_client.aiohttp import AiohttpSessionRequester
from async_upnp_client.const import HttpRequest, HttpResponse

from .errors import invalid_reply

#: The largest description or SOAP answer read (a router's are a few KiB).
MAX_DESCRIPTION_BYTES: Final = 256 * 1024
#: The deepest XML nesting accepted. A gateway's description nests about
#: ten levels (root, device, deviceList, device, deviceList, device,
#: serviceList, service, SCPDURL); SCPDs and SOAP answers fewer.
MAX_XML_DEPTH: Final = 40
_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_ENCODING: Final = re.compile(
    rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']"""
)


def decode_body(body: bytes, charset: str | None) -> str:
    """The text of an answer: a byte order mark first, then the charset the
    Content-Type names, then the XML declaration's, else UTF-8 (as UPnP requires).

    Bytes that are invalid in that encoding are replaced, never fatal.
    """
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    declared = _XML_ENCODING.match(body[:200])
    for name in (charset, declared.group(1).decode() if declared else None):
        if name:
            try:
                return body.decode(codecs.lookup(name).name, errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")


class _Depth:
    """Counts the nesting of one XML text while expat reads it."""

    def __init__(self) -> None:
        self.level = 0

    def start(self, _name: str, _attributes: object) -> None:
        self.level += 1
        if self.level > MAX_XML_DEPTH:
            raise invalid_reply(f"XML nested deeper than {MAX_XML_DEPTH} levels")

    def end(self, _name: str) -> None:
        self.level -= 1


def _refuse_entities(*_args: object) -> None:
    raise invalid_reply("XML entity declarations")


def read_xml(
    text: str,
    start: Callable[[str, dict[str, str]], object],
    end: Callable[[str], object],
    characters: Callable[[str], object] | None = None,
) -> None:
    """Run expat over ``text`` with these handlers (element names as sent:
    no namespace processing, routers get prefixes wrong). Entity declarations
    are refused (`GatewayError`); text that is no XML raises ExpatError."""
    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    if characters is not None:
        parser.CharacterDataHandler = characters
    parser.EntityDeclHandler = _refuse_entities
    parser.Parse(text, True)


def check_xml(text: str) -> None:
    """Refuse XML nested deeper than `MAX_XML_DEPTH` or declaring entities.

    Text that is no XML at all is left to the parser that reads it.
    """
    depth = _Depth()
    with contextlib.suppress(expat.ExpatError):
        read_xml(text, depth.start, depth.end)


class BoundedRequester(AiohttpSessionRequester):
    """Refuses what a router has no reason to send, before the XML is parsed.

    The descriptions and SOAP answers are parsed in the event loop: a body
    over ``max_bytes`` (announced in Content-Length or found by reading one
    byte past the bound) is refused unread, and so is XML nested deeper than
    `MAX_XML_DEPTH`. Redirects are not followed, and only URLs on the
    description's own host are asked.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        location: str,
        *,
        timeout: int,
        max_bytes: int = MAX_DESCRIPTION_BYTES,
    ) -> None:
        """Ask only the host of ``location``, each request bounded by ``timeout`` s."""
        super().__init__(session, with_sleep=False, timeout=timeout)
        self._host = urlsplit(location).hostname or ""
        self._max_bytes = max_bytes

    async def _async_http_request(self, http_request: HttpRequest) -> HttpResponse:
        url = http_request.url
        if urlsplit(url).hostname != self._host:
            raise invalid_reply("the description names URLs on another host")
        async with self._session.request(
            http_request.method,
            url,
            headers=dict(http_request.headers or {}),
            data=http_request.body,
            timeout=self._timeout,
            allow_redirects=False,
        ) as response:
            if 300 <= response.status < 400:
                raise invalid_reply("a redirect (not followed)")
            length = response.content_length
            if length is not None and length > self._max_bytes:
                raise self._too_large()
            body = bytearray()
            while chunk := await response.content.read(self._max_bytes + 1 - len(body)):
                body += chunk
                if len(body) > self._max_bytes:
                    raise self._too_large()
            text = decode_body(bytes(body), response.charset)
            check_xml(text)
            return HttpResponse(response.status, response.headers, text)

    def _too_large(self) -> Exception:
        return invalid_reply(f"an answer over {self._max_bytes // 1024} KiB")
