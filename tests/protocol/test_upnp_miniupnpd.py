"""protocol/upnp.py against Debian's miniupnpd in network namespaces of its own.

Three namespaces: the router (miniupnpd, a "WAN" veth towards the provider
namespace and a "LAN" veth), and a LAN client that runs our query in a child
process. Nothing touches this machine's own interfaces; SSDP stays inside the
router's LAN. Needs root (``ip netns``) and scripts/setup's miniupnpd.

miniupnpd 2.3 hides a private, shared (CGNAT) or documentation WAN address:
GetExternalIPAddress answers an empty string and AddPortMapping fails (501).
So this is the CGNAT case as a miniupnpd router reports it; the other states
run against tests/fakes/igd.py, which can report any WAN address.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from custom_components.secure_remote_access.protocol.remote_access import (
    Facts,
    RemoteAccessState,
    judge,
)
from custom_components.secure_remote_access.protocol.upnp import GatewayFacts

REPO = Path(__file__).resolve().parents[2]
MINIUPNPD = "/usr/sbin/miniupnpd"
WAN_ADDRESS = "100.64.0.7"  # inside the namespaces only
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
import asyncio, dataclasses, json, sys
import aiohttp
from custom_components.secure_remote_access.protocol.upnp import (
    GatewayError, local_address_towards, query_gateway)

async def main():
    async with aiohttp.ClientSession() as session:
        try:
            facts = await query_gateway(session, sys.argv[1], timeout_seconds=10)
        except GatewayError as err:
            return {"error": err.reason.value}
    return {**dataclasses.asdict(facts), "local": local_address_towards(sys.argv[1])}

print(json.dumps(asyncio.run(main())))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Namespaces:
    """Router, provider (WAN peer) and LAN client namespaces."""

    def __init__(self, tag: str) -> None:
        """Names only; `create` builds them."""
        self.router = f"sra-{tag}-r"
        self.provider = f"sra-{tag}-w"
        self.client = f"sra-{tag}-l"
        self.daemon: subprocess.Popen[bytes] | None = None

    def create(self) -> None:
        """Two veth pairs, addresses, routes."""
        for name in (self.router, self.provider, self.client):
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("link", "add", "wan0", "netns", self.router, "type", "veth",
            "peer", "name", "wanp", "netns", self.provider)  # fmt: skip
        _ip("link", "add", "lan0", "netns", self.router, "type", "veth",
            "peer", "name", "eth0", "netns", self.client)  # fmt: skip
        for ns, dev, address in (
            (self.router, "wan0", f"{WAN_ADDRESS}/10"),
            (self.provider, "wanp", "100.64.0.1/10"),
            (self.router, "lan0", f"{ROUTER_LAN}/24"),
            (self.client, "eth0", f"{CLIENT}/24"),
        ):
            _ip("-n", ns, "addr", "add", address, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", self.router, "route", "add", "default", "via", "100.64.0.1")
        _ip("-n", self.client, "route", "add", "default", "via", ROUTER_LAN)

    def delete(self) -> None:
        """Remove whatever exists (veths go with their namespaces)."""
        for name in (self.router, self.provider, self.client):
            subprocess.run(
                ["ip", "netns", "del", name],
                capture_output=True,
                timeout=10,
                check=False,
            )


@pytest.fixture
def miniupnpd(tmp_path: Path) -> Iterator[Namespaces]:
    """miniupnpd running in the router namespace; torn down after the test."""
    spaces = Namespaces(uuid.uuid4().hex[:6])
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


def _query(spaces: Namespaces) -> dict[str, object]:
    done = _in_client(spaces, sys.executable, "-c", QUERY, LOCATION)
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
