"""A UPnP Internet gateway served by async_upnp_client's server module on 127.0.0.1.

A real IGD implementation for the tests and the sandbox: device and service
descriptions, SOAP control, UPnP errors, all produced by the library's
server classes (``async_upnp_client.server``). Only its HTTP side runs: no
SSDP socket is ever opened (no multicast leaves the host); clients get the
description URL (:attr:`FakeIgd.location`) directly.

``mode`` turns it into a broken router: ``garbage`` answers every request
with an HTML page, ``garbage_soap`` only the control requests, ``hang``
never answers, ``refuse`` answers GetExternalIPAddress with a UPnP error,
``refuse_mappings`` answers GetGenericPortMappingEntry with UPnP error 606,
``read_only`` answers every change with 606 (UPnP changes switched off).
`GatewayState` plays the error replies of real routers that Debian's
miniupnpd (tests/fakes/miniupnpd.py) cannot give: a chosen UPnP error for
every addition, permanent leases only (725), additions that are accepted
but never listed, deletions that change nothing, and a router that stops
answering right after a change. This is IGDv1 (no AddAnyPortMapping, no
IPv6 firewall); tests/fakes/igd_v2.py adds both.
"""

# No ``from __future__ import annotations``: the server module checks the
# actions' parameter annotations against the state variable types.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast
import xml.etree.ElementTree as ET

from aiohttp import web
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client import UpnpRequester
from async_upnp_client.const import DeviceInfo, ServiceInfo, StateVariableTypeInfo
from async_upnp_client.exceptions import UpnpActionError
from async_upnp_client.server import (
    UpnpServerDevice,
    UpnpServerService,
    action_handler,
    callable_action,
    create_state_var,
    to_xml,
)

from .gateway import HOST, LoopbackGateway

WAN_IP_CONNECTION = "urn:schemas-upnp-org:service:WANIPConnection:1"
ARRAY_INDEX_INVALID = 713
NO_SUCH_ENTRY = 714


#: What names a port mapping: the arguments and their state variables.
MAPPING_KEY_ARGS: dict[str, str] = {
    "NewRemoteHost": "RemoteHost",
    "NewExternalPort": "ExternalPort",
    "NewProtocol": "PortMappingProtocol",
}
#: A port mapping's arguments and their state variables (IGD:1 WANIPConnection).
MAPPING_ARGS: dict[str, str] = {
    **MAPPING_KEY_ARGS,
    "NewInternalPort": "InternalPort",
    "NewInternalClient": "InternalClient",
    "NewEnabled": "PortMappingEnabled",
    "NewPortMappingDescription": "PortMappingDescription",
    "NewLeaseDuration": "PortMappingLeaseDuration",
}


@dataclass
class Mapping:
    """A port mapping as the router stores it."""

    external_port: int
    protocol: str
    internal_port: int
    internal_client: str
    description: str = "test"
    enabled: bool = True
    lease_seconds: int = 0


@dataclass
class Pinhole:
    """An IPv6 firewall pinhole as the router stores it (tests/fakes/igd_v2.py)."""

    internal_client: str
    internal_port: int
    protocol: int
    lease_seconds: int
    packets: int = 0


@dataclass
class GatewayState:
    """What the fake router knows; tests change it between runs."""

    wan_address: str = "203.0.113.7"
    mappings: list[Mapping] = field(default_factory=list)
    mode: str = "ok"
    requests: int = 0
    #: The UPnP error code every AddPortMapping (and AddPinhole) answers.
    add_error: int | None = None
    #: Only leases of 0 (permanent) are accepted: 725 otherwise.
    permanent_only: bool = False
    #: Additions are answered with success but never listed.
    lists_additions: bool = True
    #: Deletions are answered with success but the mapping stays.
    keeps_deleted: bool = False
    #: The modes the router turns to after answering each change, in turn
    #: (``["hang"]``: it vanishes in the middle of an add-and-read-back;
    #: ``["ok", "hang"]``: after the second change).
    after_changes: list[str] = field(default_factory=list)
    #: The longest description the router keeps (longer ones are cut).
    description_limit: int | None = None
    #: The longest lease the router grants (longer requests get this one).
    lease_limit: int | None = None
    #: How many additions (and renewals) the router took. Like linux-igd it
    #: lists a mapping's granted lease, not what is left of it.
    additions: int = 0
    #: How many deletions the router carried out.
    deletions: int = 0
    firewall_enabled: bool = True
    inbound_pinholes_allowed: bool = True
    pinholes: dict[int, Pinhole] = field(default_factory=dict)

    def refuse_change(self, *, addition: bool) -> None:
        """Raise the UPnP error a change gets in the router's current shape."""
        if self.mode == "read_only":
            raise UpnpActionError(error_code=606, error_desc="Action not authorized")
        if addition and self.add_error is not None:
            raise UpnpActionError(error_code=self.add_error, error_desc="Refused")

    def changed(self) -> None:
        """A change was answered: the router may now vanish."""
        if self.after_changes:
            self.mode = self.after_changes.pop(0)


def state_var(data_type: str, default: str | None = None) -> StateVariableTypeInfo:
    return create_state_var(data_type, default=default)


class GatewayService(UpnpServerService):
    """A service of the fake router: its `GatewayState` is set by `FakeIgd`."""

    state: GatewayState


class WanIpConnectionService(GatewayService):
    """WANIPConnection:1: the read actions, AddPortMapping and DeletePortMapping."""

    SERVICE_DEFINITION = ServiceInfo(
        service_id="urn:upnp-org:serviceId:WANIPConn1",
        service_type=WAN_IP_CONNECTION,
        control_url="/upnp/control/WANIPConn1",
        event_sub_url="/upnp/event/WANIPConn1",
        scpd_url="/WANIPCn.xml",
        xml=ET.Element("server_service"),
    )
    STATE_VARIABLE_DEFINITIONS = {  # noqa: RUF012
        "ExternalIPAddress": state_var("string"),
        "PortMappingNumberOfEntries": state_var("ui2", "0"),
        "RemoteHost": state_var("string"),
        "ExternalPort": state_var("ui2"),
        "PortMappingProtocol": state_var("string"),
        "InternalPort": state_var("ui2"),
        "InternalClient": state_var("string"),
        "PortMappingEnabled": state_var("boolean"),
        "PortMappingDescription": state_var("string"),
        "PortMappingLeaseDuration": state_var("ui4"),
    }

    @callable_action(
        name="GetExternalIPAddress",
        in_args={},
        out_args={"NewExternalIPAddress": "ExternalIPAddress"},
    )
    async def get_external_ip_address(self) -> dict[str, Any]:
        """The WAN address, or a UPnP error in ``refuse`` mode."""
        if self.state.mode == "refuse":
            raise UpnpActionError(error_code=606, error_desc="Action not authorized")
        return {"NewExternalIPAddress": self.state.wan_address}

    @callable_action(
        name="GetGenericPortMappingEntry",
        in_args={"NewPortMappingIndex": "PortMappingNumberOfEntries"},
        out_args=dict(MAPPING_ARGS),
    )
    async def get_generic_port_mapping_entry(
        self,
        NewPortMappingIndex: int,  # noqa: N803
    ) -> dict[str, Any]:
        """One mapping by index; 713 past the end, as routers answer."""
        if self.state.mode == "refuse_mappings":
            raise UpnpActionError(error_code=606, error_desc="Action not authorized")
        mappings = self.state.mappings
        if NewPortMappingIndex >= len(mappings):
            raise UpnpActionError(
                error_code=ARRAY_INDEX_INVALID, error_desc="SpecifiedArrayIndexInvalid"
            )
        mapping = mappings[NewPortMappingIndex]
        return {
            "NewRemoteHost": "",
            "NewExternalPort": mapping.external_port,
            "NewProtocol": mapping.protocol,
            "NewInternalPort": mapping.internal_port,
            "NewInternalClient": mapping.internal_client,
            "NewEnabled": mapping.enabled,
            "NewPortMappingDescription": mapping.description,
            "NewLeaseDuration": mapping.lease_seconds,
        }

    @callable_action(
        name="GetSpecificPortMappingEntry",
        in_args=dict(MAPPING_KEY_ARGS),
        out_args={
            "NewInternalPort": "InternalPort",
            "NewInternalClient": "InternalClient",
            "NewEnabled": "PortMappingEnabled",
            "NewPortMappingDescription": "PortMappingDescription",
            "NewLeaseDuration": "PortMappingLeaseDuration",
        },
    )
    async def get_specific_port_mapping_entry(
        self,
        NewRemoteHost: str,  # noqa: N803
        NewExternalPort: int,  # noqa: N803
        NewProtocol: str,  # noqa: N803
    ) -> dict[str, Any]:
        """One mapping by external port and protocol; 714 when there is none."""
        if self.state.mode == "refuse_mappings":
            raise UpnpActionError(error_code=606, error_desc="Action not authorized")
        for mapping in self.state.mappings:
            if (mapping.external_port, mapping.protocol) == (
                NewExternalPort,
                NewProtocol,
            ):
                return {
                    "NewInternalPort": mapping.internal_port,
                    "NewInternalClient": mapping.internal_client,
                    "NewEnabled": mapping.enabled,
                    "NewPortMappingDescription": mapping.description,
                    "NewLeaseDuration": mapping.lease_seconds,
                }
        raise UpnpActionError(error_code=NO_SUCH_ENTRY, error_desc="NoSuchEntryInArray")

    @callable_action(
        name="DeletePortMapping",
        in_args=dict(MAPPING_KEY_ARGS),
        out_args={},
    )
    async def delete_port_mapping(
        self,
        NewRemoteHost: str,  # noqa: N803
        NewExternalPort: int,  # noqa: N803
        NewProtocol: str,  # noqa: N803
    ) -> dict[str, Any]:
        """Delete a mapping; 714 when there is none."""
        self.state.refuse_change(addition=False)
        key = (NewExternalPort, NewProtocol)
        if not any((m.external_port, m.protocol) == key for m in self.state.mappings):
            raise UpnpActionError(
                error_code=NO_SUCH_ENTRY, error_desc="NoSuchEntryInArray"
            )
        if not self.state.keeps_deleted:
            self.state.deletions += 1
            self.state.mappings = [
                m for m in self.state.mappings if (m.external_port, m.protocol) != key
            ]
        self.state.changed()
        return {}

    def _store(self, mapping: Mapping) -> None:
        """Add (or replace) a mapping, as the router's answer to an addition."""
        self.state.refuse_change(addition=True)
        if self.state.permanent_only and mapping.lease_seconds:
            raise UpnpActionError(
                error_code=725, error_desc="OnlyPermanentLeasesSupported"
            )
        key = (mapping.external_port, mapping.protocol)
        self.state.mappings = [
            m for m in self.state.mappings if (m.external_port, m.protocol) != key
        ]
        if (limit := self.state.description_limit) is not None:
            mapping.description = mapping.description[:limit]
        if (cap := self.state.lease_limit) is not None:
            mapping.lease_seconds = min(mapping.lease_seconds or cap, cap)
        self.state.additions += 1
        if self.state.lists_additions:
            self.state.mappings.append(mapping)
        self.state.changed()

    @callable_action(
        name="AddPortMapping",
        in_args=dict(MAPPING_ARGS),
        out_args={},
    )
    async def add_port_mapping(
        self,
        NewRemoteHost: str,  # noqa: N803
        NewExternalPort: int,  # noqa: N803
        NewProtocol: str,  # noqa: N803
        NewInternalPort: int,  # noqa: N803
        NewInternalClient: str,  # noqa: N803
        NewEnabled: bool,  # noqa: N803
        NewPortMappingDescription: str,  # noqa: N803
        NewLeaseDuration: int,  # noqa: N803
    ) -> dict[str, Any]:
        """Add (or replace) a mapping."""
        self._store(
            Mapping(
                NewExternalPort,
                NewProtocol,
                NewInternalPort,
                NewInternalClient,
                NewPortMappingDescription,
                NewEnabled,
                NewLeaseDuration,
            )
        )
        return {}


def device_info(device_type: str, name: str, udn: str) -> DeviceInfo:
    return DeviceInfo(
        device_type=device_type,
        friendly_name=name,
        manufacturer="Secure Remote Access tests",
        manufacturer_url=None,
        model_description=None,
        model_name=name,
        model_number="1",
        model_url=None,
        serial_number="1",
        udn=udn,
        upc=None,
        presentation_url=None,
        url="/rootDesc.xml",
        icons=[],
        xml=ET.Element("server_device"),
    )


class WanConnectionDevice(UpnpServerDevice):
    """WANConnectionDevice:1 holding WANIPConnection:1."""

    DEVICE_DEFINITION = device_info(
        "urn:schemas-upnp-org:device:WANConnectionDevice:1",
        "WAN connection",
        "uuid:5ea1c0de-0000-4000-8000-000000000003",
    )
    EMBEDDED_DEVICES = ()
    SERVICES = (WanIpConnectionService,)


class WanDevice(UpnpServerDevice):
    """WANDevice:1."""

    DEVICE_DEFINITION = device_info(
        "urn:schemas-upnp-org:device:WANDevice:1",
        "WAN device",
        "uuid:5ea1c0de-0000-4000-8000-000000000002",
    )
    EMBEDDED_DEVICES = (WanConnectionDevice,)
    SERVICES = ()


class InternetGatewayDevice(UpnpServerDevice):
    """InternetGatewayDevice:1, the root device."""

    DEVICE_DEFINITION = device_info(
        "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
        "Test gateway",
        "uuid:5ea1c0de-0000-4000-8000-000000000001",
    )
    EMBEDDED_DEVICES = (WanDevice,)
    SERVICES = ()


GARBAGE = "<html><body><h1>Router login</h1><p>Please log in</body>"


class FakeIgd(LoopbackGateway):
    """The gateway's HTTP server on 127.0.0.1 (no SSDP)."""

    def __init__(
        self,
        state: GatewayState | None = None,
        root: type[UpnpServerDevice] = InternetGatewayDevice,
    ) -> None:
        """Nothing listens until `start`; ``root`` is the device tree served."""
        super().__init__()
        self.state = state or GatewayState()
        self._root = root

    @web.middleware
    async def _faults(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.state.requests += 1
        mode = self.state.mode
        if mode == "hang":
            await self.hang()
            raise web.HTTPServiceUnavailable
        if mode == "garbage" or (mode == "garbage_soap" and request.method == "POST"):
            return web.Response(text=GARBAGE, content_type="text/html")
        return await handler(request)

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: a free one); return the location."""
        self.port = self.free_port(port)
        requester: UpnpRequester = AiohttpRequester()
        device = self._root(requester, f"http://{HOST}:{self.port}")
        app = web.Application(middlewares=[self._faults])
        app.router.add_get(device.device_url, partial(to_xml, device))
        for service in device.all_services:
            server_service = cast("UpnpServerService", service)
            if isinstance(server_service, GatewayService):
                server_service.state = self.state
            definition = server_service.SERVICE_DEFINITION
            app.router.add_get(definition.scpd_url, partial(to_xml, server_service))
            app.router.add_post(
                definition.control_url, partial(action_handler, server_service)
            )
        return await self.listen(app)
