"""protocol/upnp's readers without a network: descriptions, SOAP, errors, charsets."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from async_upnp_client.const import HttpRequest
import pytest

from custom_components.secure_remote_access.protocol.upnp import (
    ActionRefusedError,
    BoundedRequester,
    GatewayError,
    GatewayReason,
    decode_body,
)
from custom_components.secure_remote_access.protocol.upnp.description import (
    MAX_DEVICES,
    MAX_SERVICES,
    parse_description,
)
from custom_components.secure_remote_access.protocol.upnp.errors import gateway_errors
from custom_components.secure_remote_access.protocol.upnp.soap import (
    envelope,
    parse_answer,
)

LOCATION = "http://192.168.178.1:49000/igddesc.xml"
IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
PPP = "urn:schemas-upnp-org:service:WANPPPConnection:1"


def _service(control: str | None, kind: str = PPP) -> str:
    url = "" if control is None else f"<controlURL>{control}</controlURL>"
    return f"<service><serviceType>{kind}</serviceType>{url}</service>"


def _root(services: str, devices: str = "", base: str = "") -> str:
    return (
        f'<root xmlns="urn:schemas-upnp-org:device-1-0">{base}<device>'
        f"<deviceType>{IGD}</deviceType><friendlyName>Box</friendlyName>"
        f"<serviceList>{services}</serviceList>"
        f"<deviceList>{devices}</deviceList></device></root>"
    )


def test_service_urls_resolve_against_urlbase_and_stay_on_the_host() -> None:
    """URLBase counts; no control URL, or one on another host: left out."""
    description = parse_description(
        _root(
            _service("igdupnp/control/WANPPPConn1")
            + _service(None)
            + _service("http://192.168.178.9/steal")
        ),
        LOCATION,
    )
    assert [s.control_url for s in description.services] == [
        "http://192.168.178.1:49000/igdupnp/control/WANPPPConn1"
    ]
    based = parse_description(
        _root(_service("ctl"), base="<URLBase>http://192.168.178.1:5000/x/</URLBase>"),
        LOCATION,
    )
    assert based.services[0].control_url == "http://192.168.178.1:5000/x/ctl"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (_root(_service("/a") * (MAX_SERVICES + 1)), "services"),
        (
            _root(
                "",
                "<device><deviceType>x</deviceType></device>" * (MAX_DEVICES + 1),
            ),
            "devices",
        ),
        (
            _root("").replace(IGD, "urn:schemas-upnp-org:device:MediaRenderer:1"),
            "no Internet gateway",
        ),
        ('<root xmlns="urn:schemas-upnp-org:device-1-0"/>', "names no device"),
        ("<root><device>", "no XML"),
    ],
)
def test_descriptions_no_gateway_has(text: str, detail: str) -> None:
    """Too many devices or services, no gateway, no device, no XML: invalid."""
    with pytest.raises(GatewayError) as caught:
        parse_description(text, LOCATION)
    assert caught.value.reason is GatewayReason.INVALID_REPLY
    assert detail in caught.value.detail


def test_soap_requests_and_answers() -> None:
    """Arguments in order (booleans as 0/1, escaped); faults with or without a code."""
    request = envelope(PPP, "AddPortMapping", [("NewEnabled", True), ("NewX", "<&>")])
    assert "<NewEnabled>1</NewEnabled><NewX>&lt;&amp;&gt;</NewX>" in request
    assert parse_answer(
        "<Envelope><Body><XResponse><A>1</A><B><C>deep</C></B></XResponse>"
        "</Body></Envelope>",
        "X",
    ) == {"A": "1", "B": ""}
    with pytest.raises(ActionRefusedError) as refused:
        parse_answer(
            "<Envelope><Body><Fault><faultstring>nope</faultstring></Fault>"
            "</Body></Envelope>",
            "X",
        )
    assert (refused.value.code, refused.value.description) == (None, "nope")


@pytest.mark.parametrize(
    ("body", "charset", "text"),
    [
        (b"\xfe\xff" + "Küche".encode("utf-16-be"), "iso-8859-1", "Küche"),
        ("<a>Küche</a>".encode("latin-1"), None, "<a>K\ufffdche</a>"),
        (
            '<?xml version="1.0" encoding="windows-1252"?><a>€</a>'.encode("cp1252"),
            None,
            '<?xml version="1.0" encoding="windows-1252"?><a>€</a>',
        ),
    ],
)
def test_decoding(body: bytes, charset: str | None, text: str) -> None:
    """A BOM wins over the header, a declaration counts without one; bytes
    that are no UTF-8 without any are replaced."""
    assert decode_body(body, charset) == text


def _connect_timed_out() -> None:
    raise aiohttp.ClientConnectionError("connect") from TimeoutError()


async def _translated(fail: Callable[[], None]) -> GatewayReason:
    with pytest.raises(GatewayError) as caught:
        async with gateway_errors(5):
            fail()
    return caught.value.reason


def _refused() -> None:
    raise ActionRefusedError("GetExternalIPAddress", 606, "Not authorized")


def _recursion() -> None:
    raise RecursionError


async def test_errors_become_gateway_reasons() -> None:
    """A connection error caused by a time-out is a time-out; a refusal,
    refused; anything a reply makes the parser raise, an invalid reply."""
    assert await _translated(_connect_timed_out) is GatewayReason.TIMEOUT
    assert await _translated(_refused) is GatewayReason.REFUSED
    assert await _translated(_recursion) is GatewayReason.INVALID_REPLY


async def test_the_requester_asks_no_other_host() -> None:
    """A URL on another host than the description's is refused unasked."""
    async with aiohttp.ClientSession() as session:
        requester = BoundedRequester(session, LOCATION, timeout=1)
        with pytest.raises(GatewayError) as caught:
            await requester.async_http_request(
                HttpRequest("GET", "http://169.254.169.254/latest", {}, None)
            )
    assert caught.value.reason is GatewayReason.INVALID_REPLY
