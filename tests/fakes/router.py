"""A UPnP Internet gateway of the project's own, on 127.0.0.1: real routers' shapes.

miniupnpd (tests/protocol/test_upnp_miniupnpd.py) and async_upnp_client's
server (tests/fakes/igd.py) each play one tidy gateway. Real homes have
others, and this one plays them: the description and the SOAP answers are
written here by hand after real routers, and every HTTP detail can be
turned:

* **Shapes** (`fritzbox`, `multi_line_modem`, `igd2_router`): a FRITZ!Box's
  igddesc.xml (IGD:1; a WANConnectionDevice with WANDSLLinkConfig, an
  unused WANIPConnection, Disconnected with an empty address, and the
  WANPPPConnection its PPPoE session runs on; AVM's ``Any`` service at the
  root), a DSL modem with one WANConnectionDevice per line, an IGD:2 router
  with WANIPConnection:2 and the IPv6 firewall beside it.
* **Encodings**: any Content-Type (``text/xml`` without charset,
  ``ISO-8859-1``), an encoding named only in the XML declaration, a byte
  order mark.
* **Bad routers**: descriptions nested without end or padded past any
  bound, answers that come slowly or never, a router that vanishes after
  a number of requests (the connection is dropped, nothing listens any more).

The SOAP actions follow the UPnP WANIPConnection:1/2 and WANPPPConnection:1
service templates: GetStatusInfo, GetExternalIPAddress,
GetGenericPortMappingEntry (713 past the end), GetSpecificPortMappingEntry
(714 NoSuchEntryInArray), AddPortMapping, DeletePortMapping (714); any action
can be refused with a UPnP error per connection. Nothing here is
async_upnp_client: the requests are read and the answers written by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from xml.parsers import expat
from xml.sax.saxutils import escape

from aiohttp import web

from .gateway import LoopbackGateway
from .igd import ARRAY_INDEX_INVALID, MAPPING_ARGS, NO_SUCH_ENTRY, Mapping

WAN_IP_1: Final = "urn:schemas-upnp-org:service:WANIPConnection:1"
WAN_IP_2: Final = "urn:schemas-upnp-org:service:WANIPConnection:2"
WAN_PPP_1: Final = "urn:schemas-upnp-org:service:WANPPPConnection:1"
DSL_LINK: Final = "urn:schemas-upnp-org:service:WANDSLLinkConfig:1"
COMMON_IFC: Final = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
IPV6_FIREWALL: Final = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
L3_FORWARDING: Final = "urn:schemas-upnp-org:service:Layer3Forwarding:1"
AVM_ANY: Final = "urn:schemas-any-com:service:Any:1"
UTF8_XML: Final = 'text/xml; charset="utf-8"'
SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
INVALID_ACTION: Final = 401

#: Action -> (input arguments, output arguments), as in the service templates.
_ACTIONS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "GetConnectionTypeInfo": ((), ("NewConnectionType", "NewPossibleConnectionTypes")),
    "RequestConnection": ((), ()),
    "ForceTermination": ((), ()),
    "GetStatusInfo": (
        (),
        ("NewConnectionStatus", "NewLastConnectionError", "NewUptime"),
    ),
    "GetNATRSIPStatus": ((), ("NewRSIPAvailable", "NewNATEnabled")),
    "GetGenericPortMappingEntry": (("NewPortMappingIndex",), tuple(MAPPING_ARGS)),
    "GetSpecificPortMappingEntry": (tuple(MAPPING_ARGS)[:3], tuple(MAPPING_ARGS)[3:]),
    "AddPortMapping": (tuple(MAPPING_ARGS), ()),
    "DeletePortMapping": (tuple(MAPPING_ARGS)[:3], ()),
    "GetExternalIPAddress": ((), ("NewExternalIPAddress",)),
}


@dataclass
class Connection:
    """One WAN connection service and what the router keeps for it."""

    service_type: str = WAN_IP_1
    status: str = "Connected"
    address: str = "203.0.113.7"
    mappings: list[Mapping] = field(default_factory=list)
    #: Action -> the UPnP error code the router answers it with.
    refuse: dict[str, int] = field(default_factory=dict)
    #: Action -> an HTTP status and a body sent as they are (broken routers).
    raw: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: GetGenericPortMappingEntry past the end of the list: an HTTP status
    #: and a body sent as they are (None: 713 SpecifiedArrayIndexInvalid).
    past_end: tuple[int, str] | None = None
    name: str = "WANIPConn1"
    #: Requests to this service are never answered (a hung service).
    hangs: bool = False
    #: Answers are cut short (half sent, then the connection closed).
    cut_short: bool = False

    def answer(self, action: str, arguments: dict[str, str]) -> dict[str, str]:
        """The output arguments; `UpnpFaultError` for a UPnP error."""
        if action in self.refuse:
            raise UpnpFaultError(self.refuse[action], "Action not authorized")
        handler: Callable[[dict[str, str]], dict[str, str]] | None = getattr(
            self, f"_{action}", None
        )
        if action not in _ACTIONS or handler is None:
            raise UpnpFaultError(INVALID_ACTION, "Invalid Action")
        return handler(arguments)

    def _GetStatusInfo(self, _arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        return {
            "NewConnectionStatus": self.status,
            "NewLastConnectionError": "ERROR_NONE",
            "NewUptime": "4711" if self.status == "Connected" else "0",
        }

    def _GetExternalIPAddress(self, _arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        return {"NewExternalIPAddress": self.address}

    def _GetConnectionTypeInfo(self, _arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        return {
            "NewConnectionType": "IP_Routed",
            "NewPossibleConnectionTypes": "IP_Routed",
        }

    def _GetGenericPortMappingEntry(self, arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        index = int(arguments["NewPortMappingIndex"])
        if index >= len(self.mappings):
            raise UpnpFaultError(ARRAY_INDEX_INVALID, "SpecifiedArrayIndexInvalid")
        mapping = self.mappings[index]
        return {
            "NewRemoteHost": "",
            "NewExternalPort": str(mapping.external_port),
            "NewProtocol": mapping.protocol,
            **self._entry(mapping),
        }

    def _GetSpecificPortMappingEntry(self, arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        return self._entry(self._find(arguments))

    def _AddPortMapping(self, arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        key = (int(arguments["NewExternalPort"]), arguments["NewProtocol"])
        self.mappings = [
            m for m in self.mappings if (m.external_port, m.protocol) != key
        ]
        self.mappings.insert(
            0,
            Mapping(
                key[0],
                key[1],
                int(arguments["NewInternalPort"]),
                arguments["NewInternalClient"],
                arguments["NewPortMappingDescription"],
                arguments["NewEnabled"] == "1",
            ),
        )
        return {}

    def _DeletePortMapping(self, arguments: dict[str, str]) -> dict[str, str]:  # noqa: N802
        self.mappings.remove(self._find(arguments))
        return {}

    def _find(self, arguments: dict[str, str]) -> Mapping:
        key = (int(arguments["NewExternalPort"]), arguments["NewProtocol"])
        for mapping in self.mappings:
            if (mapping.external_port, mapping.protocol) == key:
                return mapping
        raise UpnpFaultError(NO_SUCH_ENTRY, "NoSuchEntryInArray")

    @staticmethod
    def _entry(mapping: Mapping) -> dict[str, str]:
        return {
            "NewInternalPort": str(mapping.internal_port),
            "NewInternalClient": mapping.internal_client,
            "NewEnabled": "1" if mapping.enabled else "0",
            "NewPortMappingDescription": mapping.description,
            "NewLeaseDuration": "0",
        }


class UpnpFaultError(Exception):
    """A UPnP error the router answers (HTTP 500 with a SOAP Fault)."""

    def __init__(self, code: int, description: str) -> None:
        """Keep the code and its description."""
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description


@dataclass
class ConnectionDevice:
    """A WANConnectionDevice: its connections and other services (in order)."""

    connections: list[Connection]
    other_services: tuple[str, ...] = ()
    version: int = 1


@dataclass
class RouterModel:
    """What the router is and how it answers; tests change it between runs."""

    friendly_name: str
    connection_devices: list[ConnectionDevice]
    version: int = 1
    root_services: tuple[str, ...] = ()
    wan_services: tuple[str, ...] = (COMMON_IFC,)
    manufacturer: str = "Secure Remote Access tests"
    #: The Content-Type header, the encoding and the XML declaration of answers.
    content_type: str = UTF8_XML
    encoding: str = "utf-8"
    declaration: str = '<?xml version="1.0"?>'
    bom: bytes = b""
    #: Devices nested around the WANDevice (a description nested without end).
    nesting: int = 0
    #: Bytes of comment padding in the description (a huge one).
    padding: int = 0
    #: A description sent instead of the generated one.
    description_text: str | None = None
    #: Seconds before every answer; None: SOAP requests are never answered.
    delay: float | None = 0.0
    #: Drop the connection at this request and stop listening (None: never).
    vanish_at: int | None = None
    #: Send only the first half of the description (its Content-Length whole),
    #: then close the connection: a reply cut short.
    truncated: bool = False
    requests: list[str] = field(default_factory=list)

    @property
    def connections(self) -> list[Connection]:
        """Every connection service, in document order."""
        return [c for device in self.connection_devices for c in device.connections]


def fritzbox(address: str = "203.0.113.7") -> RouterModel:
    """A FRITZ!Box on PPPoE: the WANIPConnection beside the PPP one is unused."""
    return RouterModel(
        friendly_name="FRITZ!Box 7590",
        manufacturer="AVM Berlin",
        root_services=(AVM_ANY,),
        connection_devices=[
            ConnectionDevice(
                [
                    Connection(WAN_IP_1, "Disconnected", "", name="WANIPConn1"),
                    Connection(WAN_PPP_1, "Connected", address, name="WANPPPConn1"),
                ],
                other_services=(DSL_LINK,),
            )
        ],
    )


def multi_line_modem(address: str = "203.0.113.7") -> RouterModel:
    """A DSL modem with one WANConnectionDevice per line; the third one is up."""
    return RouterModel(
        friendly_name="DSL modem",
        connection_devices=[
            ConnectionDevice(
                [Connection(WAN_PPP_1, status, addr, name=f"WANPPPConn{line}")],
                other_services=(DSL_LINK,),
            )
            for line, (status, addr) in enumerate(
                [
                    ("Disconnected", ""),
                    ("Unconfigured", "0.0.0.0"),  # noqa: S104
                    ("Connected", address),
                ],
                start=1,
            )
        ],
    )


def igd2_router(address: str = "203.0.113.7") -> RouterModel:
    """An IGD:2 router: WANIPConnection:2 with the IPv6 firewall beside it."""
    return RouterModel(
        friendly_name="IGD2 router",
        version=2,
        root_services=(L3_FORWARDING,),
        connection_devices=[
            ConnectionDevice(
                [Connection(WAN_IP_2, "Connected", address, name="WANIPConn1")],
                other_services=(IPV6_FIREWALL,),
                version=2,
            )
        ],
    )


def _service(service_type: str, name: str) -> str:
    kind = service_type.split(":")[-2]
    return (
        f"<service><serviceType>{service_type}</serviceType>"
        f"<serviceId>urn:upnp-org:serviceId:{name}</serviceId>"
        f"<controlURL>/upnp/control/{name}</controlURL>"
        f"<eventSubURL>/upnp/event/{name}</eventSubURL>"
        f"<SCPDURL>/{kind}SCPD.xml</SCPDURL></service>"
    )


def _device(device_type: str, name: str, uuid: int, services: str, inner: str) -> str:
    devices = f"<deviceList>{inner}</deviceList>" if inner else ""
    return (
        f"<device><deviceType>urn:schemas-upnp-org:device:{device_type}</deviceType>"
        f"<friendlyName>{escape(name)}</friendlyName>"
        f"<manufacturer>Secure Remote Access tests</manufacturer>"
        f"<modelName>{escape(name)}</modelName>"
        f"<UDN>uuid:5ea1c0de-0000-4000-8000-{uuid:012d}</UDN>"
        f"<serviceList>{services}</serviceList>{devices}</device>"
    )


def description(model: RouterModel) -> str:
    """The root device description of ``model``."""
    connection_devices = "".join(
        _device(
            f"WANConnectionDevice:{device.version}",
            "WANConnectionDevice",
            10 + index,
            "".join(
                _service(kind, kind.split(":")[-2] + str(index + 1))
                for kind in device.other_services
            )
            + "".join(_service(c.service_type, c.name) for c in device.connections),
            "",
        )
        for index, device in enumerate(model.connection_devices)
    )
    wan = _device(
        f"WANDevice:{model.version}",
        "WANDevice",
        2,
        "".join(
            _service(kind, kind.split(":")[-2] + "1") for kind in model.wan_services
        ),
        connection_devices,
    )
    for _ in range(model.nesting):
        wan = (
            "<device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>"
            f"<deviceList>{wan}</deviceList></device>"
        )
    root = _device(
        f"InternetGatewayDevice:{model.version}",
        model.friendly_name,
        1,
        "".join(
            _service(kind, kind.split(":")[-2] + "1") for kind in model.root_services
        ),
        wan,
    ).replace(
        "<manufacturer>Secure Remote Access tests</manufacturer>",
        f"<manufacturer>{escape(model.manufacturer)}</manufacturer>",
        1,
    )
    padding = f"<!--{' ' * model.padding}-->" if model.padding else ""
    return (
        f'<root xmlns="urn:schemas-upnp-org:device-1-0">'
        f"<specVersion><major>1</major><minor>0</minor></specVersion>"
        f"{root}{padding}</root>"
    )


def scpd(service_type: str) -> str:
    """A service description: the template's actions for connection services."""
    if service_type not in (WAN_IP_1, WAN_IP_2, WAN_PPP_1):
        return '<scpd xmlns="urn:schemas-upnp-org:service-1-0"><actionList/></scpd>'
    actions = "".join(
        f"<action><name>{name}</name><argumentList>"
        + "".join(
            f"<argument><name>{arg}</name><direction>{direction}</direction>"
            f"<relatedStateVariable>{arg.removeprefix('New')}</relatedStateVariable>"
            "</argument>"
            for direction, args in (("in", ins), ("out", outs))
            for arg in args
        )
        + "</argumentList></action>"
        for name, (ins, outs) in _ACTIONS.items()
    )
    return (
        '<?xml version="1.0"?><scpd xmlns="urn:schemas-upnp-org:service-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        f"<actionList>{actions}</actionList></scpd>"
    )


def envelope(service_type: str, action: str, values: dict[str, str]) -> str:
    """A SOAP answer."""
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in values.items())
    return (
        f'<s:Envelope xmlns:s="{SOAP_NS}" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f'<u:{action}Response xmlns:u="{service_type}">{body}</u:{action}Response>'
        "</s:Body></s:Envelope>"
    )


def fault(code: int, description: str) -> str:
    """A SOAP Fault with a UPnP error, as routers answer it."""
    return (
        f'<s:Envelope xmlns:s="{SOAP_NS}" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{description}"
        "</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
    )


def read_request(text: str) -> tuple[str, dict[str, str]]:
    """The action and the arguments of a SOAP request."""
    path: list[str] = []
    found: dict[str, str] = {}
    action: list[str] = []
    chars: list[str] = []

    def start(name: str, _attrs: Any) -> None:
        path.append(name.rpartition(":")[2])
        chars.clear()
        if len(path) == 3:
            action.append(path[-1])

    def end(_name: str) -> None:
        if len(path) == 4:
            found[path[-1]] = "".join(chars)
        path.pop()
        chars.clear()

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars.append
    parser.Parse(text, True)
    return action[0], found


class FakeRouter(LoopbackGateway):
    """The router's HTTP server on 127.0.0.1 (no SSDP)."""

    DESCRIPTION_PATH = "/igddesc.xml"

    def __init__(self, model: RouterModel) -> None:
        """Nothing listens until `start`."""
        super().__init__()
        self.model = model
        self._tasks: set[asyncio.Task[None]] = set()

    def _encode(self, text: str, declare: bool) -> bytes:
        model = self.model
        text = text.removeprefix('<?xml version="1.0"?>')
        if declare and not text.startswith("<?xml"):
            text = model.declaration + text
        return model.bom + text.encode(model.encoding)

    def _reply(
        self, text: str, status: int = 200, *, declare: bool = True
    ) -> web.Response:
        response = web.Response(status=status, body=self._encode(text, declare))
        response.headers["Content-Type"] = self.model.content_type
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        model = self.model
        model.requests.append(f"{request.method} {request.path}")
        if model.vanish_at is not None and len(model.requests) >= model.vanish_at:
            if request.transport is not None:
                request.transport.close()
            task = asyncio.get_running_loop().create_task(self.stop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            raise web.HTTPServiceUnavailable
        if model.delay is None and request.method == "POST":
            await self.hang()
        elif model.delay:
            await asyncio.sleep(model.delay)
        if request.method == "GET":
            if request.path == self.DESCRIPTION_PATH:
                if model.description_text is not None:
                    return self._reply(model.description_text, declare=False)
                if model.truncated:
                    return await self._cut_short(request, description(model))
                return self._reply(description(model))
            kinds = [
                kind
                for device in model.connection_devices
                for kind in (
                    *device.other_services,
                    *(c.service_type for c in device.connections),
                )
            ] + [*model.root_services, *model.wan_services]
            for kind in kinds:
                if request.path == f"/{kind.split(':')[-2]}SCPD.xml":
                    return self._reply(scpd(kind))
            raise web.HTTPNotFound
        return await self._control(request)

    async def _cut_short(self, request: web.Request, text: str) -> web.StreamResponse:
        body = self._encode(text, True)
        response = web.StreamResponse()
        response.content_length = len(body)
        response.headers["Content-Type"] = self.model.content_type
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return response

    async def _control(self, request: web.Request) -> web.Response:
        name = request.path.rpartition("/")[2]
        action, arguments = read_request(await request.text())
        for connection in self.model.connections:
            if connection.name == name:
                if connection.hangs:
                    await self.hang()
                if action in connection.raw:
                    status, text = connection.raw[action]
                    return self._reply(text, status, declare=False)
                if (
                    action == "GetGenericPortMappingEntry"
                    and connection.past_end is not None
                    and int(arguments["NewPortMappingIndex"])
                    >= len(connection.mappings)
                ):
                    status, text = connection.past_end
                    return self._reply(text, status, declare=False)
                try:
                    values = connection.answer(action, arguments)
                except UpnpFaultError as err:
                    return self._reply(fault(err.code, err.description), 500)
                text = envelope(connection.service_type, action, values)
                if connection.cut_short:
                    return await self._cut_short(request, text)
                return self._reply(text)
        return self._reply(fault(INVALID_ACTION, "Invalid Action"), 500)

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: a free one); return the location."""
        self.port = self.free_port(port)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return await self.listen(app)
