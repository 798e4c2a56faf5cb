"""The IGDv2 shape of tests/fakes/igd.py: AddAnyPortMapping and the IPv6 firewall.

``FakeIgd(state, root=InternetGatewayDevice2)`` serves WANIPConnection:2
(with AddAnyPortMapping answering NewReservedPort as the standard names it)
and WANIPv6FirewallControl:1, whose refusals follow the standard: 702 while
the firewall is off, 703 while inbound pinholes are not allowed, 704 for an
unknown id, 709 from CheckPinholeWorking until a test counts packets
(`Pinhole.packets`), and `GatewayState.add_error` for every AddPinhole.
"""

# No ``from __future__ import annotations``: the server module checks the
# actions' parameter annotations against the state variable types.

from typing import Any
import xml.etree.ElementTree as ET

from async_upnp_client.const import ServiceInfo
from async_upnp_client.exceptions import UpnpActionError
from async_upnp_client.server import UpnpServerDevice, callable_action

from tests.fakes.igd import (
    MAPPING_ARGS,
    GatewayService,
    Mapping,
    Pinhole,
    WanIpConnectionService,
    device_info,
    state_var,
)

WAN_IP_CONNECTION_2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
FIREWALL_CONTROL = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
FIRST_PICKED_PORT = 1024


class WanIpConnection2Service(WanIpConnectionService):
    """WANIPConnection:2: version 1's actions and AddAnyPortMapping."""

    SERVICE_DEFINITION = WanIpConnectionService.SERVICE_DEFINITION._replace(
        service_type=WAN_IP_CONNECTION_2
    )

    @callable_action(
        name="AddAnyPortMapping",
        in_args=dict(MAPPING_ARGS),
        out_args={"NewReservedPort": "ExternalPort"},
    )
    async def add_any_port_mapping(
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
        """The requested port when free, else the first free one from 1024."""
        taken = {
            m.external_port for m in self.state.mappings if m.protocol == NewProtocol
        }
        port = NewExternalPort
        if port in taken:
            port = next(p for p in range(FIRST_PICKED_PORT, 65536) if p not in taken)
        self._store(
            Mapping(
                port,
                NewProtocol,
                NewInternalPort,
                NewInternalClient,
                NewPortMappingDescription,
                NewEnabled,
                NewLeaseDuration,
            )
        )
        return {"NewReservedPort": port}


class FirewallControlService(GatewayService):
    """WANIPv6FirewallControl:1."""

    SERVICE_DEFINITION = ServiceInfo(
        service_id="urn:upnp-org:serviceId:WANIPv6Firewall1",
        service_type=FIREWALL_CONTROL,
        control_url="/upnp/control/WANIPv6Firewall1",
        event_sub_url="/upnp/event/WANIPv6Firewall1",
        scpd_url="/WANIP6FC.xml",
        xml=ET.Element("server_service"),
    )
    STATE_VARIABLE_DEFINITIONS = {  # noqa: RUF012
        "FirewallEnabled": state_var("boolean"),
        "InboundPinholeAllowed": state_var("boolean"),
        "A_ARG_TYPE_IPv6Address": state_var("string"),
        "A_ARG_TYPE_Port": state_var("ui2"),
        "A_ARG_TYPE_Protocol": state_var("ui2"),
        "A_ARG_TYPE_LeaseTime": state_var("ui4"),
        "A_ARG_TYPE_UniqueID": state_var("ui2"),
        "A_ARG_TYPE_Boolean": state_var("boolean"),
    }

    def _firewall_on(self) -> None:
        if not self.state.firewall_enabled:
            raise UpnpActionError(error_code=702, error_desc="FirewallDisabled")

    def _known(self, unique_id: int) -> Pinhole:
        self._firewall_on()
        if unique_id not in self.state.pinholes:
            raise UpnpActionError(error_code=704, error_desc="NoSuchEntry")
        return self.state.pinholes[unique_id]

    @callable_action(
        name="GetFirewallStatus",
        in_args={},
        out_args={
            "FirewallEnabled": "FirewallEnabled",
            "InboundPinholeAllowed": "InboundPinholeAllowed",
        },
    )
    async def get_firewall_status(self) -> dict[str, Any]:
        """Whether the firewall is on and allows pinholes."""
        return {
            "FirewallEnabled": self.state.firewall_enabled,
            "InboundPinholeAllowed": self.state.inbound_pinholes_allowed,
        }

    @callable_action(
        name="AddPinhole",
        in_args={
            "RemoteHost": "A_ARG_TYPE_IPv6Address",
            "RemotePort": "A_ARG_TYPE_Port",
            "InternalClient": "A_ARG_TYPE_IPv6Address",
            "InternalPort": "A_ARG_TYPE_Port",
            "Protocol": "A_ARG_TYPE_Protocol",
            "LeaseTime": "A_ARG_TYPE_LeaseTime",
        },
        out_args={"UniqueID": "A_ARG_TYPE_UniqueID"},
    )
    async def add_pinhole(
        self,
        RemoteHost: str,  # noqa: N803
        RemotePort: int,  # noqa: N803
        InternalClient: str,  # noqa: N803
        InternalPort: int,  # noqa: N803
        Protocol: int,  # noqa: N803
        LeaseTime: int,  # noqa: N803
    ) -> dict[str, Any]:
        """The same pinhole again keeps its id (its lease is extended)."""
        self._firewall_on()
        if not self.state.inbound_pinholes_allowed:
            raise UpnpActionError(error_code=703, error_desc="InboundPinholeNotAllowed")
        self.state.refuse_change(addition=True)
        wanted = Pinhole(InternalClient, InternalPort, Protocol, LeaseTime)
        for unique_id, pinhole in self.state.pinholes.items():
            if (pinhole.internal_client, pinhole.internal_port, pinhole.protocol) == (
                InternalClient,
                InternalPort,
                Protocol,
            ):
                self.state.pinholes[unique_id] = wanted
                break
        else:
            unique_id = max(self.state.pinholes, default=0) + 1
            if self.state.lists_additions:
                self.state.pinholes[unique_id] = wanted
        self.state.changed()
        return {"UniqueID": unique_id}

    @callable_action(
        name="UpdatePinhole",
        in_args={
            "UniqueID": "A_ARG_TYPE_UniqueID",
            "NewLeaseTime": "A_ARG_TYPE_LeaseTime",
        },
        out_args={},
    )
    async def update_pinhole(
        self,
        UniqueID: int,  # noqa: N803
        NewLeaseTime: int,  # noqa: N803
    ) -> dict[str, Any]:
        """A new lease for a known pinhole."""
        self._known(UniqueID).lease_seconds = NewLeaseTime
        return {}

    @callable_action(
        name="DeletePinhole",
        in_args={"UniqueID": "A_ARG_TYPE_UniqueID"},
        out_args={},
    )
    async def delete_pinhole(self, UniqueID: int) -> dict[str, Any]:  # noqa: N803
        """Close a known pinhole (unless the router keeps what it deletes)."""
        self._known(UniqueID)
        self.state.refuse_change(addition=False)
        if not self.state.keeps_deleted:
            del self.state.pinholes[UniqueID]
        self.state.changed()
        return {}

    @callable_action(
        name="CheckPinholeWorking",
        in_args={"UniqueID": "A_ARG_TYPE_UniqueID"},
        out_args={"IsWorking": "A_ARG_TYPE_Boolean"},
    )
    async def check_pinhole_working(self, UniqueID: int) -> dict[str, Any]:  # noqa: N803
        """Working once a packet went through (tests set ``packets``), else 709."""
        if not self._known(UniqueID).packets:
            raise UpnpActionError(error_code=709, error_desc="NoPacketSent")
        return {"IsWorking": True}


class WanConnectionDevice2(UpnpServerDevice):
    """WANConnectionDevice:2 with WANIPConnection:2 and the IPv6 firewall."""

    DEVICE_DEFINITION = device_info(
        "urn:schemas-upnp-org:device:WANConnectionDevice:2",
        "WAN connection",
        "uuid:5ea1c0de-0000-4000-8000-000000000023",
    )
    EMBEDDED_DEVICES = ()
    SERVICES = (WanIpConnection2Service, FirewallControlService)


class WanDevice2(UpnpServerDevice):
    """WANDevice:2."""

    DEVICE_DEFINITION = device_info(
        "urn:schemas-upnp-org:device:WANDevice:2",
        "WAN device",
        "uuid:5ea1c0de-0000-4000-8000-000000000022",
    )
    EMBEDDED_DEVICES = (WanConnectionDevice2,)
    SERVICES = ()


class InternetGatewayDevice2(UpnpServerDevice):
    """InternetGatewayDevice:2, the root device."""

    DEVICE_DEFINITION = device_info(
        "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
        "Test gateway",
        "uuid:5ea1c0de-0000-4000-8000-000000000021",
    )
    EMBEDDED_DEVICES = (WanDevice2,)
    SERVICES = ()
