"""protocol/upnp against Debian's miniupnpd in network namespaces of its own.

Namespaces: the router (miniupnpd and a "LAN" veth), a LAN client that runs
our query in a child process, and for the carrier-grade NAT case a provider
namespace behind a "WAN" veth. Nothing touches this machine's own
interfaces; SSDP stays inside the router's LAN. Needs root (``ip netns``)
and scripts/setup's miniupnpd, miniupnpc and nft.

miniupnpd 2.3 hides a private, shared (CGNAT) or documentation WAN address:
GetExternalIPAddress answers an empty string and AddPortMapping fails (501).
That is the CGNAT router. The other one is a PPPoE-like router: its WAN is a
point-to-point interface without link layer (a tun device, as ppp0 is) with
a public address, only inside the namespace; port forwards go into nftables
tables of the router's namespace. Debian's build only *advertises*
WANPPPConnection in SSDP (ADVERTISE_WANPPPCONN): its description and control
are WANIPConnection:2 whatever the link, so a WANPPPConnection service is
played by tests/fakes/router.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time
from typing import Any
import uuid

import pytest

from custom_components.secure_remote_access.protocol.remote_access import (
    Facts,
    Finding,
    RemoteAccessState,
    judge,
)
from custom_components.secure_remote_access.protocol.upnp import (
    ConnectionKind,
    GatewayFacts,
    PortMapping,
)

REPO = Path(__file__).resolve().parents[2]
MINIUPNPD = "/usr/sbin/miniupnpd"
WAN_ADDRESS = "100.64.0.7"  # inside the namespaces only
PUBLIC_WAN = "81.2.69.160"  # inside the router's namespace only
PPP_PEER = "81.2.69.1"
ROUTER_LAN = "192.168.77.1"
CLIENT = "192.168.77.20"
LOCATION = f"http://{ROUTER_LAN}:5000/rootDesc.xml"

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="network namespaces need root (ip netns)"
    ),
    pytest.mark.skipif(
        not (Path(MINIUPNPD).exists() and shutil.which("ip")),
        reason="miniupnpd or ip missing: run scripts/setup",
    ),
]

QUERY = """
import asyncio, dataclasses, json, sys, types
import aiohttp
# protocol/ knows nothing of Home Assistant: load it without the integration's
# __init__ (which imports Home Assistant, seconds per query).
package = types.ModuleType("custom_components.secure_remote_access")
package.__path__ = ["custom_components/secure_remote_access"]
sys.modules[package.__name__] = package
from custom_components.secure_remote_access.protocol.upnp import (
    GatewayError, local_address_towards, query_gateway)

async def main():
    wanted = [int(p) for p in sys.argv[2].split(",") if p]
    async with aiohttp.ClientSession() as session:
        try:
            facts = await query_gateway(
                session, sys.argv[1], timeout_seconds=10, wanted_ports=wanted)
        except GatewayError as err:
            return {"error": err.reason.value}
    return {**dataclasses.asdict(facts), "local": local_address_towards(sys.argv[1])}

print(json.dumps(asyncio.run(main()), default=sorted))
"""
#: nftables tables and chains of miniupnpd's nftables backend (its defaults).
NFT_RULESET = """
table inet filter {
  chain forward { type filter hook forward priority 0; policy drop; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept;
                     jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept;
                      jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Namespaces:
    """Router, provider (WAN peer, CGNAT case only) and LAN client namespaces."""

    def __init__(self, tag: str, *, pppoe: bool) -> None:
        """Names only; `create` builds them."""
        self.router = f"sra-{tag}-r"
        self.provider = f"sra-{tag}-w"
        self.client = f"sra-{tag}-l"
        self.pppoe = pppoe
        self.daemon: subprocess.Popen[bytes] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The namespaces this router needs."""
        if self.pppoe:
            return (self.router, self.client)
        return (self.router, self.provider, self.client)

    def create(self) -> None:
        """Interfaces, addresses, routes (and nftables tables for PPPoE)."""
        for name in self.names:
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("link", "add", "lan0", "netns", self.router, "type", "veth",
            "peer", "name", "eth0", "netns", self.client)  # fmt: skip
        addresses = [
            (self.router, "lan0", f"{ROUTER_LAN}/24"),
            (self.client, "eth0", f"{CLIENT}/24"),
        ]
        if self.pppoe:
            # ppp0 as pppd makes it: point-to-point, no link layer, a /32
            # with its peer.
            _ip("-n", self.router, "tuntap", "add", "dev", "wan0", "mode", "tun")
            _ip("-n", self.router, "addr", "add", PUBLIC_WAN, "peer", PPP_PEER,
                "dev", "wan0")  # fmt: skip
            _ip("-n", self.router, "link", "set", "wan0", "up")
            _ip("-n", self.router, "route", "add", "default", "dev", "wan0")
            subprocess.run(
                ["ip", "netns", "exec", self.router, "nft", "-f", "-"],
                input=NFT_RULESET.encode(),
                check=True,
                capture_output=True,
                timeout=10,
            )
        else:
            _ip("link", "add", "wan0", "netns", self.router, "type", "veth",
                "peer", "name", "wanp", "netns", self.provider)  # fmt: skip
            addresses += [
                (self.router, "wan0", f"{WAN_ADDRESS}/10"),
                (self.provider, "wanp", "100.64.0.1/10"),
            ]
        for ns, dev, address in addresses:
            _ip("-n", ns, "addr", "add", address, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        if not self.pppoe:
            _ip("-n", self.router, "route", "add", "default", "via", "100.64.0.1")
        _ip("-n", self.client, "route", "add", "default", "via", ROUTER_LAN)

    def delete(self) -> None:
        """Remove whatever exists (interfaces go with their namespaces)."""
        for name in self.names:
            subprocess.run(
                ["ip", "netns", "del", name],
                capture_output=True,
                timeout=10,
                check=False,
            )


@contextmanager
def _router(tmp_path: Path, *, pppoe: bool) -> Iterator[Namespaces]:
    """miniupnpd running in the router namespace; torn down afterwards."""
    spaces = Namespaces(uuid.uuid4().hex[:6], pppoe=pppoe)
    conf = tmp_path / "miniupnpd.conf"
    conf.write_text(
        "ext_ifname=wan0\nlistening_ip=lan0\nhttp_port=5000\nenable_upnp=yes\n"
        "enable_natpmp=no\nsecure_mode=yes\nsystem_uptime=yes\n"
        f"uuid={uuid.uuid4()}\nlease_file={tmp_path / 'leases'}\n"
        "allow 1-65535 192.168.77.0/24 1-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"
    )
    log = tmp_path / "miniupnpd.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        spaces.create()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    spaces.router,
                    MINIUPNPD,
                    "-f",
                    str(conf),
                    "-d",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while "HTTP listening on port" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        spaces.daemon = process
        yield spaces
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        spaces.delete()


@pytest.fixture
def miniupnpd(tmp_path: Path) -> Iterator[Namespaces]:
    """A miniupnpd router behind carrier-grade NAT."""
    with _router(tmp_path, pppoe=False) as spaces:
        yield spaces


@pytest.fixture
def pppoe_router(tmp_path: Path) -> Iterator[Namespaces]:
    """A miniupnpd router with a public address on a PPP-like link."""
    if not shutil.which("nft"):
        pytest.skip("nft missing: run scripts/setup")
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun for the PPP-like link")
    with _router(tmp_path, pppoe=True) as spaces:
        yield spaces


def _in_client(spaces: Namespaces, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", spaces.client, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        check=False,
    )


def _query(spaces: Namespaces, wanted: str = "") -> dict[str, object]:
    done = _in_client(spaces, sys.executable, "-c", QUERY, LOCATION, wanted)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_miniupnpd_router_behind_cgnat(miniupnpd: Namespaces) -> None:
    """Our client reads miniupnpd: no WAN address (hidden), no mapping, our LAN address."""
    # A LAN client asking for a forward, as a user's device would: refused.
    added = _in_client(
        miniupnpd, "upnpc", "-u", LOCATION, "-e", "test",
        "-a", CLIENT, "8123", "443", "TCP",
    )  # fmt: skip
    assert "failed with code 501" in added.stdout, added.stdout + added.stderr
    result = _query(miniupnpd)
    assert result["location"] == LOCATION
    assert result["wan_address"] is None
    assert result["wan_address_hidden"] is True
    assert result["mappings"] == []
    assert result["local"] == CLIENT
    facts = Facts(
        recorded_ipv4="203.0.113.7",
        gateway=GatewayFacts(LOCATION, None, (), CLIENT, wan_address_hidden=True),
    )
    judgement = judge(facts, datetime.now(UTC))
    assert judgement.state is RemoteAccessState.UNKNOWN
    assert judgement.reason == "wan_address_hidden"


def test_a_miniupnpd_router_that_stops(miniupnpd: Namespaces) -> None:
    """The router's daemon goes away between two queries: unreachable."""
    assert _query(miniupnpd)["mappings"] == []
    assert miniupnpd.daemon is not None
    miniupnpd.daemon.terminate()
    miniupnpd.daemon.wait(timeout=20)
    assert _query(miniupnpd) == {"error": "gateway_unreachable"}


def _upnpc(spaces: Namespaces, *args: str) -> str:
    done = _in_client(spaces, "upnpc", "-u", LOCATION, *args)
    return done.stdout + done.stderr


def _facts(result: dict[str, object]) -> GatewayFacts:
    """The child's answer as the GatewayFacts it was."""
    fields: dict[str, Any] = {
        k: v for k, v in result.items() if k in GatewayFacts.__dataclass_fields__
    }
    fields["mappings"] = tuple(
        PortMapping(**m)
        for m in result["mappings"]  # type: ignore[attr-defined]
    )
    fields["known_ports"] = frozenset(fields["known_ports"])
    fields["connection"] = ConnectionKind(fields["connection"])
    return GatewayFacts(**fields)


def test_a_pppoe_router_with_a_forward_past_the_list_bound(
    pppoe_router: Namespaces,
) -> None:
    """A public WAN on a point-to-point link; 443 -> 8123 behind 16 other forwards.

    The listing stops at 16 entries; GetSpecificPortMappingEntry finds 443.
    Once the user deletes it, miniupnpd answers 714 NoSuchEntryInArray and the
    plain-HTTP finding is cleared although the list is still incomplete.
    """
    added = _upnpc(pppoe_router, "-e", "ha", "-a", CLIENT, "8123", "443", "TCP")
    assert "is redirected to internal" in added, added
    for port in range(2000, 2016):  # miniupnpd lists the newest first: 443 is 17th
        _upnpc(
            pppoe_router, "-e", f"t{port}", "-a", CLIENT, str(port), str(port), "TCP"
        )
    result = _query(pppoe_router, "80,443,8123,22")
    facts = _facts(result)
    assert facts.connection is ConnectionKind.IP
    assert facts.connection_status == "Connected"
    assert facts.wan_address == PUBLIC_WAN
    assert facts.truncated
    assert PortMapping(443, "TCP", 8123, CLIENT, True) in facts.mappings
    assert {80, 443, 8123, 22} <= facts.known_ports  # 80, 8123, 22: 714
    now = datetime.now(UTC)
    judgement = judge(
        Facts(
            recorded_ipv4=PUBLIC_WAN, gateway=facts, host_addresses=frozenset({CLIENT})
        ),
        now,
    )
    assert judgement.state is RemoteAccessState.REACHABLE
    assert Finding.PLAIN_HTTP_FORWARDED in judgement.findings
    assert judgement.evidence[Finding.PLAIN_HTTP_FORWARDED] == {443}

    assert "returned : 0" in _upnpc(pppoe_router, "-d", "443", "TCP")
    facts = _facts(_query(pppoe_router, "443,80,8123,22"))
    assert facts.truncated
    assert 443 in facts.known_ports
    assert all(m.external_port != 443 for m in facts.mappings)
    again = judge(
        Facts(
            recorded_ipv4=PUBLIC_WAN,
            gateway=facts,
            host_addresses=frozenset({CLIENT}),
            port_evidence=judgement.evidence,
        ),
        now,
    )
    assert Finding.PLAIN_HTTP_FORWARDED in again.evaluated
    assert Finding.PLAIN_HTTP_FORWARDED not in again.findings
    assert again.reason == "mappings_incomplete"


def test_a_pppoe_router_whose_link_goes_down(pppoe_router: Namespaces) -> None:
    """The PPP link down: miniupnpd says Disconnected, no address: wan_disconnected."""
    assert _facts(_query(pppoe_router)).connection_status == "Connected"
    _ip("-n", pppoe_router.router, "link", "set", "wan0", "down")
    facts = _facts(_query(pppoe_router))
    assert facts.connection_status == "Disconnected"
    assert facts.wan_address is None
    judgement = judge(Facts(recorded_ipv4=PUBLIC_WAN, gateway=facts), datetime.now(UTC))
    assert (judgement.state, judgement.reason) == (
        RemoteAccessState.UNKNOWN,
        "wan_disconnected",
    )
