"""The remote-access check through Home Assistant, against real routers' shapes.

The router is `tests.fakes.router.FakeRouter` (``router_home``: a FRITZ!Box
on PPPoE). Faults first: what a router sends must never make the sensor
unavailable, the action fail or a traceback appear; one warning per outage.
"""

from __future__ import annotations

import logging

from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.secure_remote_access.protocol.upnp import MAX_DESCRIPTION_BYTES
from tests.fakes.igd import Mapping
from tests.fakes.router import description

from .remote_home import LOCAL, PUBLIC, Home

HTML_501 = "<html><body><h1>501 Not Implemented</h1></body></html>"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The integration's log lines a user would see: warnings and worse."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("custom_components.secure_remote_access")
        and record.levelno >= logging.WARNING
    ]


def _no_traceback_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    shown = [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
    assert not shown, [r.getMessage() for r in shown]


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("content_type", "encoding", "declaration"),
    [
        ("text/xml", "utf-8", '<?xml version="1.0"?>'),
        ('text/xml; charset="ISO-8859-1"', "iso-8859-1", '<?xml version="1.0"?>'),
        ("text/xml", "iso-8859-1", '<?xml version="1.0" encoding="ISO-8859-1"?>'),
    ],
)
async def test_a_router_that_names_no_charset(
    router_home: Home,
    caplog: pytest.LogCaptureFixture,
    content_type: str,
    encoding: str,
    declaration: str,
) -> None:
    """``Content-Type: text/xml`` (no charset), or ISO-8859-1: read, no crash."""
    model = router_home.router.model
    model.friendly_name = "FRITZ!Box 7590 Büro"
    model.content_type, model.encoding, model.declaration = (
        content_type,
        encoding,
        declaration,
    )
    await router_home.setup()
    assert router_home.state() == "no_port_forward"
    assert router_home.attributes()["router"] == "FRITZ!Box 7590 Büro"
    response = await router_home.check()
    assert response["state"] == "no_port_forward"
    assert response["router"] == "FRITZ!Box 7590 Büro"
    assert _warnings(caplog) == []
    _no_traceback_above_debug(caplog)


@pytest.mark.parametrize(
    ("nesting", "padding"), [(1500, 0), (0, MAX_DESCRIPTION_BYTES)]
)
async def test_a_description_nested_without_end_or_huge(
    router_home: Home, caplog: pytest.LogCaptureFixture, nesting: int, padding: int
) -> None:
    """1,500 nested devices or a padded description: gateway_invalid_reply,
    the sensor available, one warning, tracebacks at debug level only."""
    model = router_home.router.model
    model.nesting, model.padding = nesting, padding
    with caplog.at_level(logging.DEBUG, "custom_components.secure_remote_access"):
        await router_home.setup()
        assert router_home.state() == "unknown"
        assert router_home.attributes()["reason"] == "gateway_invalid_reply"
        response = await router_home.check()
    assert response["reason"] == "gateway_invalid_reply"
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "gateway_invalid_reply" in warnings[0]
    _no_traceback_above_debug(caplog)


async def test_a_reply_cut_short_is_an_invalid_reply(
    router_home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """The description ends halfway (the connection closes before its
    Content-Length): the router answered, badly: gateway_invalid_reply, not
    "could not be reached"; no traceback."""
    router_home.router.model.truncated = True
    await router_home.setup()
    assert router_home.attributes()["reason"] == "gateway_invalid_reply"
    _no_traceback_above_debug(caplog)


async def test_a_router_that_vanishes_keeps_its_issues(
    router_home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """The router drops the connection mid-check and stops listening: unknown
    (gateway_unreachable), the plain-HTTP issue stays; one warning, then it
    answers again (one info line) and the forward is judged again."""
    model = router_home.router.model
    model.connections[1].mappings = [Mapping(8123, "TCP", 8123, LOCAL)]
    await router_home.setup()
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    model.vanish_at = len(model.requests) + 3
    response = await router_home.check()
    assert response["reason"] == "gateway_unreachable"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    await router_home.check()
    assert len(_warnings(caplog)) == 1
    model.vanish_at = None
    await router_home.router.start(router_home.router.port)
    model.connections[1].mappings.clear()
    assert (await router_home.check())["state"] == "no_port_forward"
    assert router_home.issues() == {}
    assert "answers again" in caplog.text
    _no_traceback_above_debug(caplog)


async def test_a_slow_router_is_waited_for_a_silent_one_is_not(
    router_home: Home,
) -> None:
    """SOAP answers that never come: gateway_timeout within the bound."""
    router_home.router.model.delay = None
    await router_home.setup()
    assert router_home.attributes()["reason"] == "gateway_timeout"


async def test_a_router_whose_internet_connection_is_down(router_home: Home) -> None:
    """Every connection Disconnected without address: wan_disconnected, no NAT
    issue; without a router the router attributes are left out."""
    ppp = router_home.router.model.connections[1]
    ppp.status, ppp.address = "Disconnected", ""
    await router_home.setup()
    assert router_home.state() == "unknown"
    assert router_home.attributes()["reason"] == "wan_disconnected"
    assert router_home.issues() == {}
    await router_home.router.stop()
    assert (await router_home.check())["reason"] == "gateway_unreachable"
    attributes = router_home.attributes()
    assert "router" not in attributes
    assert "wan_connection" not in attributes


# ------------------------------------------------------ the WAN connection


async def test_a_pppoe_fritzbox_forwarding_plain_http(router_home: Home) -> None:
    """The forward on the PPP connection is found; the sensor says which
    service answered; the unused WANIPConnection is not asked for mappings."""
    model = router_home.router.model
    model.connections[1].mappings = [Mapping(8123, "TCP", 8123, LOCAL)]
    await router_home.setup()
    assert router_home.state() == "reachable"
    attributes = router_home.attributes()
    assert attributes["router_wan_address"] == PUBLIC
    assert attributes["wan_connection"] == "wan_ppp_connection"
    assert attributes["router"] == "FRITZ!Box 7590"
    assert "reason" not in attributes  # nothing to explain while reachable
    assert attributes["mappings"] == [
        {"external_port": 8123, "internal_port": 8123, "protocol": "TCP"}
    ]
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    assert not any(
        r.startswith("POST /upnp/control/WANIPConn1") and "Generic" in r
        for r in model.requests
    )
    response = await router_home.check()
    assert response["wan_connection"] == "wan_ppp_connection"
    assert response["findings"] == ["plain_http_forwarded"]


async def test_carrier_grade_nat_on_the_ppp_connection(router_home: Home) -> None:
    """The address of the connection in use decides the NAT verdict."""
    router_home.router.model.connections[1].address = "100.64.1.2"
    await router_home.setup()
    assert router_home.state() == "carrier_grade_nat"
    assert router_home.issues() == {"carrier_grade_nat": ir.IssueSeverity.WARNING}


async def test_unused_ip_connection_answering_501_html(router_home: Home) -> None:
    """The unused WANIPConnection answers 501 with an HTML page (a web server
    in front of a half-implemented service): the PPP connection still counts."""
    model = router_home.router.model
    ip = model.connections[0]
    ip.raw["GetStatusInfo"] = (501, HTML_501)
    ip.raw["GetExternalIPAddress"] = (501, HTML_501)
    model.connections[1].mappings = [Mapping(8123, "TCP", 8123, LOCAL)]
    await router_home.setup()
    attributes = router_home.attributes()
    assert attributes.get("reason") is None, attributes
    assert router_home.state() == "reachable"
    assert attributes["wan_connection"] == "wan_ppp_connection"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}


async def test_dual_access_private_ip_connection_beside_public_ppp(
    router_home: Home,
) -> None:
    """PPPoE "dual access": the WANIPConnection is Connected to the ISP's
    local network (a private address), the PPP session carries the public
    address and the forwards. The public PPP connection is the one in use."""
    model = router_home.router.model
    ip, ppp = model.connections
    ip.status, ip.address = "Connected", "10.20.30.40"
    ppp.mappings = [Mapping(8123, "TCP", 8123, LOCAL)]
    await router_home.setup()
    attributes = router_home.attributes()
    assert attributes["wan_connection"] == "wan_ppp_connection", attributes
    assert attributes["router_wan_address"] == PUBLIC
    assert router_home.state() == "reachable"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}


async def test_a_garbled_fault_past_the_end_of_the_list(router_home: Home) -> None:
    """Past its last mapping, a TP-Link Archer answers HTTP 500 with a fault
    whose bytes are garbled (no XML): the mappings listed before count, the
    ports that matter are asked by number; the check does not fail."""
    ppp = router_home.router.model.connections[1]
    ppp.mappings = [Mapping(8123, "TCP", 8123, LOCAL)]
    ppp.past_end = (
        500,
        (
            "<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>713"
            "</errorCode><errorDescription>SpecifiedArrayIn\ufffd\ufffd*\ufffd"
            "rrorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
        ),
    )
    await router_home.setup()
    attributes = router_home.attributes()
    assert attributes.get("reason") is None, attributes.get("reason")
    assert router_home.state() == "reachable"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    ppp.mappings.clear()  # the user deletes the forward: the router says so
    response = await router_home.check()
    assert response["state"] != "reachable"
    assert router_home.issues() == {}


async def test_a_stale_url_base_is_ignored(router_home: Home) -> None:
    """The description's URLBase names another address (deprecated since UPnP
    1.1; routers leave a stale LAN address or 0.0.0.0 there): the control
    URLs are taken relative to the description, as Home Assistant's own UPnP
    integration does, and the router is read."""
    model = router_home.router.model
    model.connections[1].mappings = [Mapping(8123, "TCP", 8123, LOCAL)]
    model.description_text = description(model).replace(
        "</specVersion>", "</specVersion><URLBase>http://192.168.1.1:5431/</URLBase>"
    )
    await router_home.setup()
    attributes = router_home.attributes()
    assert attributes.get("reason") is None, attributes.get("reason")
    assert router_home.state() == "reachable"
    assert attributes["wan_connection"] == "wan_ppp_connection"


# ------------------------------------------------------ incomplete lists


def _many(count: int) -> list[Mapping]:
    return [Mapping(2000 + i, "TCP", 2000 + i, "192.168.178.99") for i in range(count)]


async def test_a_deleted_forward_past_the_list_bound_clears_its_issue(
    router_home: Home,
) -> None:
    """More than 16 mappings: the router answers NoSuchEntryInArray for the
    port that raised the issue once the user deleted it: the issue goes."""
    ppp = router_home.router.model.connections[1]
    ppp.mappings = [*_many(20), Mapping(8443, "TCP", 8123, LOCAL)]
    await router_home.setup()
    # 8443 is neither listed nor a port asked for by number: not seen yet.
    assert router_home.attributes()["reason"] == "mappings_incomplete"
    ppp.mappings.insert(0, ppp.mappings.pop())  # the router lists it first now
    assert (await router_home.check())["state"] == "reachable"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    ppp.mappings.append(ppp.mappings.pop(0))  # past the bound again: still seen
    assert (await router_home.check())["state"] == "reachable"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    ppp.mappings.pop()  # the user deletes it
    response = await router_home.check()
    assert response["reason"] == "mappings_incomplete"
    assert router_home.issues() == {}


async def test_an_incomplete_list_without_an_answer_keeps_the_issue(
    router_home: Home,
) -> None:
    """A router that refuses GetSpecificPortMappingEntry: the issue stays."""
    ppp = router_home.router.model.connections[1]
    ppp.mappings = [Mapping(8123, "TCP", 8123, LOCAL), *_many(20)]
    await router_home.setup()
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    ppp.refuse["GetSpecificPortMappingEntry"] = 606
    ppp.mappings.pop(0)
    assert (await router_home.check())["reason"] == "mappings_incomplete"
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    del ppp.refuse["GetSpecificPortMappingEntry"]
    await router_home.check()
    assert router_home.issues() == {}
