"""A real home router for the tests: Debian's miniupnpd in network namespaces.

The test bed builds four namespaces of its own and touches nothing of this
machine's network:

* ``router``: miniupnpd 2.3.1 (nftables backend, IGDv2, IPv6 pinholes), a
  WAN interface ``wan0`` towards the provider and a LAN bridge ``br0``;
  nftables forwards LAN to WAN (masquerade) and, through miniupnpd's own
  chains, what its mappings and pinholes allow from WAN to LAN;
* ``provider``: the internet side (``wanp``), routing the LAN's IPv6 prefix
  to the router;
* ``lan``: the host Home Assistant runs on (``LAN_HOST``);
* ``other``: another LAN host (``OTHER_HOST``), for mappings that are not ours.

miniupnpd 2.3.1 refuses to forward with a reserved WAN address (RFC 1918,
100.64.0.0/10, the documentation and benchmark ranges: getifaddr.c) and
has no option to allow one, so the public WAN is ``WAN_ADDRESS``, just
past the benchmark range 198.18.0.0/15; like every address here it exists
only inside these namespaces. ``RouterConfig(wan="cgnat")`` gives the
carrier-grade NAT router instead (a hidden WAN address, every add 501),
``wan="pppoe"`` a router whose WAN is a point-to-point interface without
link layer (a tun device, as ppp0 is) with a public /32 and no provider
namespace behind it. Debian's build only *advertises* WANPPPConnection in
SSDP: its description and control are WANIPConnection:2 whatever the link
(tests/fakes/router.py plays a WANPPPConnection service).

What Debian's build does (verified against it, see docs/architecture.md):
IGDv2 (``force_igd_desc_v1=yes`` gives a true IGDv1: no AddAnyPortMapping,
no pinhole service); permission rules (``allow``/``deny`` lines; the
shipped example refuses external ports below 1024: 606); leases of 1 to
604800 s as asked (0 becomes 604800; ``min_lifetime``/``max_lifetime``
are PCP-only); the lease file is reloaded at start; mappings and pinholes
stay in nftables when the daemon stops. Pinholes need the request to come
over IPv6 from the pinhole's internal client, internal port >= 1024,
lease 1 to 86400 s; CheckPinholeWorking always answers 709 NoPacketSent
(the nft rules count no packets); GetOutboundPinholeTimeout is 501. The
DNAT rules match ``iif wan0`` only: no NAT loopback (hairpin) for mappings.

Sockets belong to the namespace of the thread that creates them:
`Namespace.entered` moves the calling thread in and back, `NamespaceLoop`
runs an event loop in a thread that lives in one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, Literal
import uuid

import pytest_socket

MINIUPNPD = "/usr/sbin/miniupnpd"
UPNPC = "/usr/bin/upnpc"
NFT = "/usr/sbin/nft"

#: Looks public to miniupnpd (and to ``ipaddress``); exists only in the namespaces.
WAN_ADDRESS = "198.20.0.2"
PROVIDER_ADDRESS = "198.20.0.1"
CGNAT_WAN_ADDRESS = "100.64.0.7"
CGNAT_PROVIDER_ADDRESS = "100.64.0.1"
#: A public address on a point-to-point link (``wan="pppoe"``), as pppd makes ppp0.
PPP_WAN_ADDRESS = "81.2.69.160"
PPP_PEER = "81.2.69.1"
ROUTER_LAN = "192.168.77.1"
LAN_NETWORK = "192.168.77.0/24"
LAN_HOST = "192.168.77.20"
OTHER_HOST = "192.168.77.30"
#: Global unicast IPv6 (2000::/3, not documentation): the provider link and the LAN.
WAN6_PREFIX = "2a0a:ffff:0:1::"
PROVIDER_ADDRESS6 = "2a0a:ffff:0:1::1"
WAN_ADDRESS6 = "2a0a:ffff:0:1::2"
ROUTER_LAN6 = "2a0a:ffff:0:77::1"
LAN_HOST6 = "2a0a:ffff:0:77::20"
#: The LAN host's next address (tests add it: the provider renumbered).
LAN_HOST6_NEXT = "2a0a:ffff:0:77::21"
OTHER_HOST6 = "2a0a:ffff:0:77::30"
#: Unique local addresses (OpenWrt gives its LAN a ULA prefix of its own).
ROUTER_ULA6 = "fd4b:1c2d:3e77::1"
LAN_HOST_ULA6 = "fd4b:1c2d:3e77::20"
HTTP_PORT = 5000
LOCATION = f"http://{ROUTER_LAN}:{HTTP_PORT}/rootDesc.xml"
LOCATION6 = f"http://[{ROUTER_LAN6}]:{HTTP_PORT}/rootDesc.xml"
LOCATION_ULA6 = f"http://[{ROUTER_ULA6}]:{HTTP_PORT}/rootDesc.xml"

#: The rules Debian's example configuration suggests: LAN hosts may map
#: external ports 1024-65535 only; everything else is refused (606).
DEFAULT_PERMISSIONS = (
    f"allow 1024-65535 {LAN_NETWORK} 1024-65535",
    "deny 0-65535 0.0.0.0/0 0-65535",
)
#: The same with external port 443 allowed too (a user who opened it).
HTTPS_PERMISSIONS = (f"allow 443 {LAN_NETWORK} 1024-65535", *DEFAULT_PERMISSIONS)

#: The router's firewall: miniupnpd's chains in table inet filter (its
#: defaults), LAN to WAN forwarded and masqueraded, WAN to LAN only as
#: miniupnpd's rules allow.
NFT_RULESET = """
table inet filter {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "br0" oifname "wan0" accept
        jump miniupnpd
    }
    chain miniupnpd {
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "wan0" masquerade
    }
    chain prerouting_miniupnpd {
    }
    chain postrouting_miniupnpd {
    }
}
"""
MINIUPNPD_CHAINS = ("miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd")
_LISTING = re.compile(
    r"^\s*\d+\s+(?P<protocol>TCP|UDP)\s+(?P<external>\d+)->(?P<client>[\d.]+):"
    r"(?P<internal>\d+)\s+'(?P<description>.*)'\s+'(?P<remote>.*)'\s+(?P<lease>\d+)\s*$"
)


def available() -> str | None:
    """Why the test bed cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns)"
    missing = [p for p in (MINIUPNPD, UPNPC, NFT) if not Path(p).exists()]
    if missing or not shutil.which("ip"):
        return f"missing {', '.join(missing) or 'ip'}: run scripts/setup"
    return None


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a command; raise with its output when it fails."""
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr or done.stdout}")
    return done


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """One miniupnpd configuration; `text` renders it."""

    wan: Literal["public", "cgnat", "pppoe"] = "public"
    igd_v1: bool = False
    secure_mode: bool = True
    ipv6: bool = True
    permissions: tuple[str, ...] = DEFAULT_PERMISSIONS
    #: The UPnP HTTP port (routers that pick one at each start move it).
    http_port: int = HTTP_PORT

    @property
    def wan_address(self) -> str:
        """The router's WAN address."""
        return {
            "public": WAN_ADDRESS,
            "cgnat": CGNAT_WAN_ADDRESS,
            "pppoe": PPP_WAN_ADDRESS,
        }[self.wan]

    def text(self, lease_file: Path) -> str:
        """The configuration file's content."""
        lines = [
            "ext_ifname=wan0",
            "listening_ip=br0",
            f"http_port={self.http_port}",
            "enable_upnp=yes",
            "enable_natpmp=no",
            f"secure_mode={'yes' if self.secure_mode else 'no'}",
            "system_uptime=yes",
            f"force_igd_desc_v1={'yes' if self.igd_v1 else 'no'}",
            f"uuid={uuid.uuid4()}",
            f"lease_file={lease_file}",
            "ext_ifname6=wan0" if self.ipv6 else "ipv6_disable=yes",
            *self.permissions,
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class RouterMapping:
    """A mapping as miniupnpc's ``upnpc -l`` lists it (equal whatever lease is left)."""

    external_port: int
    protocol: str
    internal_client: str
    internal_port: int
    description: str
    lease_seconds: int = field(compare=False)


class Namespace:
    """One network namespace by name."""

    def __init__(self, name: str) -> None:
        """Names only; `HomeNetwork.create` makes it."""
        self.name = name

    def exec(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a command inside (``ip netns exec``); raise when it fails."""
        return run("ip", "netns", "exec", self.name, *args, timeout=timeout)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into the namespace, and back afterwards."""
        with (
            open("/proc/thread-self/ns/net", "rb") as home,
            open(f"/run/netns/{self.name}", "rb") as target,
        ):
            os.setns(target.fileno(), os.CLONE_NEWNET)
            try:
                yield
            finally:
                os.setns(home.fileno(), os.CLONE_NEWNET)


class NamespaceLoop:
    """An event loop in a thread that lives in a namespace."""

    def __init__(self, namespace: Namespace) -> None:
        """Start the thread; `close` ends it."""
        self.namespace = namespace
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"netns-{namespace.name}"
        )
        self._thread.start()
        ready.wait(10)

    def _main(self, ready: threading.Event) -> None:
        with open(f"/run/netns/{self.namespace.name}", "rb") as target:
            os.setns(target.fileno(), os.CLONE_NEWNET)
        asyncio.set_event_loop(self.loop)
        ready.set()
        self.loop.run_forever()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def run[T](self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on this loop (inside the namespace)."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(coro, self.loop)
        )

    def close(self) -> None:
        """Stop the loop (pending tasks are cancelled) and end the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(20)


@dataclass
class HomeNetwork:
    """Router, provider, LAN host and another LAN host, with miniupnpd."""

    folder: Path
    config: RouterConfig = field(default_factory=RouterConfig)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    daemon: subprocess.Popen[bytes] | None = None
    _loops: list[NamespaceLoop] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Name the namespaces (nothing exists before `create`)."""
        self.router = Namespace(f"sra-{self.tag}-r")
        self.provider = Namespace(f"sra-{self.tag}-w")
        self.lan = Namespace(f"sra-{self.tag}-l")
        self.other = Namespace(f"sra-{self.tag}-o")
        self.lease_file = self.folder / "leases"
        self.log = self.folder / "miniupnpd.log"

    @property
    def namespaces(self) -> tuple[Namespace, ...]:
        """All four."""
        return (self.router, self.provider, self.lan, self.other)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address inside the namespaces (what tests may connect to)."""
        return (
            WAN_ADDRESS,
            PROVIDER_ADDRESS,
            CGNAT_WAN_ADDRESS,
            CGNAT_PROVIDER_ADDRESS,
            PPP_WAN_ADDRESS,
            ROUTER_LAN,
            LAN_HOST,
            OTHER_HOST,
            PROVIDER_ADDRESS6,
            WAN_ADDRESS6,
            ROUTER_LAN6,
            LAN_HOST6,
            LAN_HOST6_NEXT,
            OTHER_HOST6,
            ROUTER_ULA6,
            LAN_HOST_ULA6,
        )

    def create(self) -> None:
        """Namespaces, links, addresses, routes and the router's firewall."""
        for namespace in self.namespaces:
            run("ip", "netns", "add", namespace.name)
            run("ip", "-n", namespace.name, "link", "set", "lo", "up")
        r = self.router.name
        run("ip", "-n", r, "link", "add", "br0", "type", "bridge")
        for host in (self.lan, self.other):
            port = f"lan{host is self.other:d}"
            run("ip", "link", "add", port, "netns", r, "type", "veth",
                "peer", "name", "eth0", "netns", host.name)  # fmt: skip
            run("ip", "-n", r, "link", "set", port, "master", "br0", "up")
        if self.config.wan == "pppoe":
            self._point_to_point_wan()
        else:
            self._provider_wan()
        for ns, dev, addresses in (
            (r, "br0", (f"{ROUTER_LAN}/24", f"{ROUTER_LAN6}/64")),
            (self.lan.name, "eth0", (f"{LAN_HOST}/24", f"{LAN_HOST6}/64")),
            (self.other.name, "eth0", (f"{OTHER_HOST}/24", f"{OTHER_HOST6}/64")),
        ):
            _addresses(ns, dev, addresses)
        for host in (self.lan, self.other):
            run("ip", "-n", host.name, "route", "add", "default", "via", ROUTER_LAN)
            run(
                "ip",
                "-n",
                host.name,
                "-6",
                "route",
                "add",
                "default",
                "via",
                ROUTER_LAN6,
            )
        self.router.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.router.exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        ruleset = self.folder / "router.nft"
        ruleset.write_text(NFT_RULESET)
        self.router.exec(NFT, "-f", str(ruleset))

    def _provider_wan(self) -> None:
        """``wan0``: a veth to the provider namespace, IPv4 and IPv6 routed."""
        r, w = self.router.name, self.provider.name
        run("ip", "link", "add", "wan0", "netns", r, "type", "veth",
            "peer", "name", "wanp", "netns", w)  # fmt: skip
        public = self.config.wan == "public"
        provider = PROVIDER_ADDRESS if public else CGNAT_PROVIDER_ADDRESS
        prefix = "24" if public else "10"
        wan = self.config.wan_address
        _addresses(r, "wan0", (f"{wan}/{prefix}", f"{WAN_ADDRESS6}/64"))
        _addresses(w, "wanp", (f"{provider}/{prefix}", f"{PROVIDER_ADDRESS6}/64"))
        run("ip", "-n", r, "route", "add", "default", "via", provider)
        run("ip", "-n", r, "-6", "route", "add", "default", "via", PROVIDER_ADDRESS6)
        run("ip", "-n", w, "-6", "route", "add", f"{ROUTER_LAN6}/64",
            "via", WAN_ADDRESS6)  # fmt: skip

    def _point_to_point_wan(self) -> None:
        """``wan0`` as pppd makes ppp0: a tun device, a /32 with its peer."""
        r = self.router.name
        run("ip", "-n", r, "tuntap", "add", "dev", "wan0", "mode", "tun")
        run("ip", "-n", r, "addr", "add", PPP_WAN_ADDRESS, "peer", PPP_PEER,
            "dev", "wan0")  # fmt: skip
        run("ip", "-n", r, "link", "set", "wan0", "up")
        run("ip", "-n", r, "route", "add", "default", "dev", "wan0")

    def start(self, config: RouterConfig | None = None) -> None:
        """Start miniupnpd (with ``config`` if given) and wait until it listens."""
        if config is not None:
            self.config = config
        conf = self.folder / "miniupnpd.conf"
        conf.write_text(self.config.text(self.lease_file))
        log = self.log.open("wb")
        self.daemon = subprocess.Popen(
            ["ip", "netns", "exec", self.router.name, MINIUPNPD,
             "-f", str(conf), "-P", str(self.folder / "miniupnpd.pid"), "-d"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while "HTTP listening on port" not in self.log.read_text(errors="replace"):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log.read_text(errors="replace"))
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop miniupnpd; its nftables rules and lease file stay.

        A SIGTERM that arrives just before miniupnpd's select() is seen only
        when the select times out (up to its notify interval): after a few
        seconds the daemon is killed instead, like a router losing power.
        """
        if self.daemon is None:
            return
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(timeout=10)
        self.daemon = None

    def reboot(self, *, keep: tuple[int, ...] = ()) -> None:
        """Restart the router the way many do: its mappings forgotten.

        The external ports in ``keep`` survive (their lease file lines stay
        and miniupnpd adds them again at start): a router that forgets some.
        """
        self.stop()
        for chain in MINIUPNPD_CHAINS:
            self.router.exec(NFT, "flush", "chain", "inet", "filter", chain)
        kept = [line for line in self._lease_lines() if int(line.split(":")[1]) in keep]
        self.lease_file.write_text("".join(kept))
        self.start()

    def boot_before_prefix(self) -> None:
        """Restart the router the way OpenWrt boots: its LAN has only its
        unique local prefix when miniupnpd starts, the provider's prefix
        arrives later. miniupnpd picks the address it announces over IPv6
        once, at start: the unique local one, also after the global one is
        back. The LAN host has an address in the unique local prefix too
        (from the router's advertisements)."""
        self.stop()
        self.router.exec("ip", "addr", "del", f"{ROUTER_LAN6}/64", "dev", "br0")
        for namespace, dev, address in (
            (self.router, "br0", ROUTER_ULA6),
            (self.lan, "eth0", LAN_HOST_ULA6),
        ):
            namespace.exec("ip", "addr", "add", f"{address}/64", "dev", dev, "nodad")
        self.start()
        self.router.exec(
            "ip", "addr", "add", f"{ROUTER_LAN6}/64", "dev", "br0", "nodad"
        )

    def _lease_lines(self) -> list[str]:
        if not self.lease_file.exists():
            return []
        return self.lease_file.read_text().splitlines(keepends=True)

    def mappings(self, host: Literal["lan", "other"] = "other") -> list[RouterMapping]:
        """The router's mapping list as miniupnpc reads it (not our code)."""
        namespace = self.other if host == "other" else self.lan
        listing = namespace.exec(UPNPC, "-u", LOCATION, "-l").stdout
        return [
            RouterMapping(
                external_port=int(match["external"]),
                protocol=match["protocol"],
                internal_client=match["client"],
                internal_port=int(match["internal"]),
                description=match["description"],
                lease_seconds=int(match["lease"]),
            )
            for line in listing.splitlines()
            if (match := _LISTING.match(line))
        ]

    def add_mapping(
        self,
        host: Literal["lan", "other"],
        external_port: int,
        internal_port: int,
        description: str = "game console",
        lease_seconds: int = 0,
    ) -> str:
        """Another program on a LAN host adds a TCP mapping (``upnpc -a``)."""
        namespace = self.other if host == "other" else self.lan
        client = OTHER_HOST if host == "other" else LAN_HOST
        return namespace.exec(
            UPNPC, "-u", LOCATION, "-e", description, "-a", client,
            str(internal_port), str(external_port), "TCP", str(lease_seconds),
        ).stdout  # fmt: skip

    def lan_link_local(self) -> str:
        """The LAN host's link-local address on eth0, once it is usable (blocking)."""
        deadline = time.monotonic() + 10
        while True:
            shown = self.lan.exec("ip", "-6", "-o", "addr", "show", "dev", "eth0")
            for line in shown.stdout.splitlines():
                if " fe80::" in line and "tentative" not in line:
                    address = line.split(" fe80::", 1)[1].split("/", 1)[0]
                    return f"fe80::{address}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"no usable link-local address: {shown.stdout}")
            time.sleep(0.1)

    def loop(self, namespace: Namespace) -> NamespaceLoop:
        """An event loop inside ``namespace``, closed with the network."""
        started = NamespaceLoop(namespace)
        self._loops.append(started)
        return started

    def delete(self) -> None:
        """Stop everything and remove the namespaces (links go with them)."""
        for started in self._loops:
            started.close()
        self._loops.clear()
        self.stop()
        for namespace in self.namespaces:
            subprocess.run(
                ["ip", "netns", "del", namespace.name],
                capture_output=True,
                timeout=10,
                check=False,
            )


def _addresses(namespace: str, device: str, addresses: tuple[str, ...]) -> None:
    """Give ``device`` its addresses (IPv6 without duplicate detection) and bring it up."""
    for address in addresses:
        nodad = ("nodad",) if ":" in address else ()
        run("ip", "-n", namespace, "addr", "add", address, "dev", device, *nodad)
    run("ip", "-n", namespace, "link", "set", device, "up")


def _namespace_id(path: str) -> int:
    return os.stat(path).st_ino


@contextlib.contextmanager
def reachable_inside(network: HomeNetwork) -> Iterator[None]:
    """Let sockets reach the network's addresses, from inside its namespaces only.

    The test plugin lets tests connect to 127.0.0.1 only. From this
    machine's own namespace these addresses would leave the host, so a
    connection is let through only from a thread inside one of the
    network's namespaces; everything else still meets the plugin's guard.
    """
    guarded: Callable[..., Any] = socket.socket.connect
    inside = {_namespace_id(f"/run/netns/{ns.name}") for ns in network.namespaces}
    addresses = set(network.addresses)

    def connect(sock: socket.socket, *args: Any) -> Any:
        host = pytest_socket.host_from_connect_args(args)
        if host in addresses and _namespace_id("/proc/thread-self/ns/net") in inside:
            return pytest_socket._true_connect(sock, *args)
        return guarded(sock, *args)

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = guarded  # type: ignore[method-assign]


@contextlib.contextmanager
def home_network(folder: Path, config: RouterConfig) -> Iterator[HomeNetwork]:
    """A running `HomeNetwork`, removed afterwards whatever happened."""
    network = HomeNetwork(folder, config)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        network.create()
        network.start()
        with reachable_inside(network):
            yield network
    finally:
        network.delete()
