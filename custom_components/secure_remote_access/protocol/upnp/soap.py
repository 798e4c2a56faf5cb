"""UPnP control: one SOAP action to one service, its answer or its UPnP error.

No Home Assistant imports. Answers are read by local names (routers get
namespaces and prefixes wrong) from text the bounded requester decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from xml.parsers import expat
from xml.sax.saxutils import escape

from async_upnp_client.client import UpnpRequester
from async_upnp_client.const import HttpRequest

from .description import Service
from .errors import ActionRefusedError, GatewayError, invalid_reply
from .http import read_xml

SOAP_ENVELOPE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENCODING: Final = "http://schemas.xmlsoap.org/soap/encoding/"
#: HTTP statuses with which routers refuse an action without a UPnP error.
_REFUSING_STATUSES: Final = frozenset({401, 403})

type Argument = tuple[str, str | int | bool]


def envelope(service_type: str, action: str, arguments: Sequence[Argument]) -> str:
    """The SOAP request of ``action`` with ``arguments`` (in their order)."""
    values = "".join(
        f"<{name}>{escape(_text(value))}</{name}>" for name, value in arguments
    )
    return (
        '<?xml version="1.0"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENVELOPE}" s:encodingStyle="{SOAP_ENCODING}">'
        f'<s:Body><u:{action} xmlns:u="{escape(service_type)}">{values}'
        f"</u:{action}></s:Body></s:Envelope>"
    )


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class _Answer:
    """Reads the first element in the SOAP Body: the action's response or a Fault."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.body_at: int | None = None
        self.kind: str | None = None
        self.values: dict[str, str] = {}
        self.fault: dict[str, str] = {}
        self._chars: list[str] = []

    def start(self, name: str, _attributes: object) -> None:
        local = name.rpartition(":")[2]
        self.path.append(local)
        self._chars.clear()
        if local == "Body" and self.body_at is None:
            self.body_at = len(self.path)
        elif self.body_at is not None and len(self.path) == self.body_at + 1:
            self.kind = self.kind or local

    def end(self, _name: str) -> None:
        local = self.path.pop()
        text = "".join(self._chars).strip()
        self._chars.clear()
        if self.body_at is None or len(self.path) <= self.body_at:
            return
        if self.kind == "Fault":
            self.fault.setdefault(local, text)
        elif len(self.path) == self.body_at + 1:
            self.values[local] = text

    def characters(self, data: str) -> None:
        self._chars.append(data)


def parse_answer(text: str, action: str) -> dict[str, str]:
    """The output arguments of an answer; `ActionRefusedError` for a UPnP error."""
    answer = _Answer()
    try:
        read_xml(text, answer.start, answer.end, answer.characters)
    except expat.ExpatError as err:
        raise invalid_reply(f"{action}: the answer is no XML ({err})") from err
    if answer.kind == "Fault":
        code = answer.fault.get("errorCode", "")
        raise ActionRefusedError(
            action,
            int(code) if code.isdigit() else None,
            answer.fault.get("errorDescription")
            or answer.fault.get("faultstring", "")[:100],
        )
    if answer.kind is None:
        raise invalid_reply(f"{action}: the answer is no SOAP response")
    return answer.values


async def call_action(
    requester: UpnpRequester,
    service: Service,
    action: str,
    arguments: Sequence[Argument] = (),
) -> dict[str, str]:
    """Call ``action`` of ``service``; its output arguments by name.

    Raises `ActionRefusedError` when the router answers with a UPnP error (or
    401/403), `GatewayError` for an answer that is no SOAP.
    """
    response = await requester.async_http_request(
        HttpRequest(
            "POST",
            service.control_url,
            {
                "Content-Type": 'text/xml; charset="utf-8"',
                "SOAPAction": f'"{service.service_type}#{action}"',
            },
            envelope(service.service_type, action, arguments),
        )
    )
    if response.status_code in _REFUSING_STATUSES:
        raise ActionRefusedError(action, None, f"HTTP status {response.status_code}")
    try:
        values = parse_answer(response.body or "", action)
    except GatewayError:
        if response.status_code != 200:
            raise invalid_reply(
                f"{action}: HTTP status {response.status_code}"
            ) from None
        raise
    if response.status_code != 200:
        raise invalid_reply(f"{action}: HTTP status {response.status_code}")
    return values
