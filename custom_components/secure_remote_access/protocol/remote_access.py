"""The remote-access check: facts in, a state and findings out; the hairpin probe.

No Home Assistant imports. `judge` is pure; `hairpin_probe` does one or two
bounded TLS handshakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
import ipaddress
from typing import Final

from .tls import inspect_endpoint
from .upnp import GatewayFacts, PortMapping
from .x509.errors import CertificateError

#: A name must resolve elsewhere this long before it counts as a mismatch.
DNS_MISMATCH_AFTER: Final = timedelta(minutes=15)
HAIRPIN_TIMEOUT: Final = 5.0
MAX_HAIRPIN_PROBES: Final = 2
HTTPS_PORT: Final = 443
HTTP_PORT: Final = 80
SSH_PORT: Final = 22

# Addresses no port forward from the internet can reach (100.64.0.0/10: RFC 6598).
_NOT_PUBLIC: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
    )
)


class RemoteAccessState(StrEnum):
    """The sensor's states."""

    REACHABLE = "reachable"
    DNS_MISMATCH = "dns_mismatch"
    CARRIER_GRADE_NAT = "carrier_grade_nat"
    NO_PORT_FORWARD = "no_port_forward"
    UNKNOWN = "unknown"


class Finding(StrEnum):
    """What deserves a Repairs issue (the value is the issue's translation key)."""

    CARRIER_GRADE_NAT = "carrier_grade_nat"
    PLAIN_HTTP_FORWARDED = "plain_http_forwarded"
    PORT_80_FORWARDED = "port_80_forwarded"
    SSH_FORWARDED_WITH_PASSWORD = "ssh_forwarded_with_password"  # noqa: S105
    DNS_MISMATCH = "dns_mismatch"


class Hairpin(StrEnum):
    """What the TLS handshake to the public address found."""

    REACHED_US = "reached_us"
    OTHER_CERTIFICATE = "other_certificate"
    NO_ANSWER = "no_answer"
    NOT_TRIED = "not_tried"


class UnknownReason(StrEnum):
    """Why the state is unknown (besides the gateway's own reasons)."""

    NO_IPV4 = "no_ipv4"
    WAN_ADDRESS_UNKNOWN = "wan_address_unknown"
    MAPPINGS_REFUSED = "mappings_refused"
    MAPPINGS_INCOMPLETE = "mappings_incomplete"


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything one run collected."""

    recorded_ipv4: str | None
    recorded_ipv6: str | None = None
    #: Addresses per name from DuckDNS's servers; a name missing was not checked.
    resolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Since when a name resolves elsewhere (kept by the caller across runs).
    mismatch_since: datetime | None = None
    gateway: GatewayFacts | None = None
    gateway_reason: str | None = None
    host_addresses: frozenset[str] = frozenset()
    ha_port: int = 8123
    serves_https: bool = False
    #: Host ports of SSH add-ons that accept passwords (22 inside the add-on).
    ssh_password_ports: frozenset[int] = frozenset()
    hairpin: Hairpin = Hairpin.NOT_TRIED


@dataclass(frozen=True, slots=True)
class Judgement:
    """The state, why it is unknown, and the findings with their placeholders."""

    state: RemoteAccessState
    reason: str | None
    findings: Mapping[Finding, Mapping[str, str]]
    #: The findings this run could judge: the others keep their last verdict.
    evaluated: frozenset[Finding] = frozenset(Finding)


def is_public_ipv4(text: str) -> bool:
    """Whether ``text`` is an IPv4 address a port forward could be reached on."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.version == 4 and not any(address in net for net in _NOT_PUBLIC)


def mismatched_names(
    resolved: Mapping[str, Sequence[str]], ipv4: str | None, ipv6: str | None
) -> list[str]:
    """Names whose A (or, with a recorded IPv6, AAAA) records differ from DuckDNS's."""
    result = []
    for name, addresses in sorted(resolved.items()):
        for version, recorded in ((4, ipv4), (6, ipv6)):
            if recorded is None:
                continue
            found = {a for a in addresses if _version(a) == version}
            if found != {recorded}:
                result.append(name)
                break
    return result


def _version(text: str) -> int | None:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None


def mappings_to_host(facts: Facts) -> tuple[PortMapping, ...]:
    """The enabled mappings whose internal client is this host."""
    if facts.gateway is None:
        return ()
    ours = set(facts.host_addresses)
    if facts.gateway.local_address:
        ours.add(facts.gateway.local_address)
    return tuple(
        mapping
        for mapping in facts.gateway.mappings
        if mapping.enabled and mapping.internal_client in ours
    )


def web_mappings(facts: Facts) -> tuple[PortMapping, ...]:
    """TCP mappings to this host's web ports (Home Assistant's or 443)."""
    return tuple(
        mapping
        for mapping in mappings_to_host(facts)
        if mapping.protocol == "TCP"
        and mapping.internal_port in (facts.ha_port, HTTPS_PORT)
    )


def probe_ports(facts: Facts) -> tuple[int, ...]:
    """External ports the hairpin probe tries: forwarded web ports, else 443."""
    ports = sorted({mapping.external_port for mapping in web_mappings(facts)})
    return tuple(ports[:MAX_HAIRPIN_PROBES] or [HTTPS_PORT])


def _findings(facts: Facts, state: RemoteAccessState) -> dict[Finding, dict[str, str]]:
    findings: dict[Finding, dict[str, str]] = {}
    tcp = [m for m in mappings_to_host(facts) if m.protocol == "TCP"]
    if state is RemoteAccessState.CARRIER_GRADE_NAT and facts.gateway is not None:
        findings[Finding.CARRIER_GRADE_NAT] = {
            "wan_address": facts.gateway.wan_address or "-",
            "public_address": facts.recorded_ipv4 or "-",
        }
    plain = [m for m in tcp if m.internal_port == facts.ha_port]
    if plain and not facts.serves_https:
        findings[Finding.PLAIN_HTTP_FORWARDED] = {
            "ports": _ports(plain),
            "port": str(facts.ha_port),
        }
    if port_80 := [m for m in tcp if HTTP_PORT in (m.external_port, m.internal_port)]:
        findings[Finding.PORT_80_FORWARDED] = {"ports": _ports(port_80)}
    ssh_ports = facts.ssh_password_ports
    if ssh_ports and (
        ssh := [m for m in tcp if m.internal_port in ssh_ports | {SSH_PORT}]
    ):
        findings[Finding.SSH_FORWARDED_WITH_PASSWORD] = {"ports": _ports(ssh)}
    if state is RemoteAccessState.DNS_MISMATCH:
        names = mismatched_names(
            facts.resolved, facts.recorded_ipv4, facts.recorded_ipv6
        )
        findings[Finding.DNS_MISMATCH] = {
            "names": ", ".join(names),
            "resolved": ", ".join(
                sorted({a for name in names for a in facts.resolved[name]})
            )
            or "-",
            "recorded": ", ".join(
                a for a in (facts.recorded_ipv4, facts.recorded_ipv6) if a
            ),
        }
    return findings


def _ports(mappings: Iterable[PortMapping]) -> str:
    return ", ".join(
        f"{m.external_port} → {m.internal_port}"
        for m in sorted(mappings, key=lambda m: m.external_port)
    )


#: The findings that come from the router's port mappings.
PORT_FINDINGS: Final = frozenset(
    {
        Finding.PLAIN_HTTP_FORWARDED,
        Finding.PORT_80_FORWARDED,
        Finding.SSH_FORWARDED_WITH_PASSWORD,
    }
)


def judge(facts: Facts, now: datetime) -> Judgement:
    """The state (first that holds) and every finding."""
    state, reason = _state(facts, now)
    evaluated = set(Finding)
    if facts.gateway is None:
        evaluated = {Finding.DNS_MISMATCH}
    elif facts.gateway.mappings_refused:
        evaluated -= PORT_FINDINGS
    findings = _findings(facts, state)
    if facts.gateway is not None and facts.gateway.truncated:
        # An incomplete list can show a forward, never that there is none.
        evaluated -= PORT_FINDINGS - findings.keys()
    if not facts.resolved:
        evaluated.discard(Finding.DNS_MISMATCH)
    return Judgement(state, reason, findings, frozenset(evaluated))


def _state(facts: Facts, now: datetime) -> tuple[RemoteAccessState, str | None]:
    if (
        facts.mismatch_since is not None
        and now - facts.mismatch_since >= DNS_MISMATCH_AFTER
        and mismatched_names(facts.resolved, facts.recorded_ipv4, facts.recorded_ipv6)
    ):
        return RemoteAccessState.DNS_MISMATCH, None
    gateway = facts.gateway
    if gateway is None:
        return RemoteAccessState.UNKNOWN, facts.gateway_reason or "no_gateway"
    wan = gateway.wan_address
    if wan is None or _version(wan) != 4:
        return RemoteAccessState.UNKNOWN, UnknownReason.WAN_ADDRESS_UNKNOWN
    if not is_public_ipv4(wan):
        return RemoteAccessState.CARRIER_GRADE_NAT, None
    if facts.recorded_ipv4 is None:
        return RemoteAccessState.UNKNOWN, UnknownReason.NO_IPV4
    if wan != facts.recorded_ipv4:
        return RemoteAccessState.CARRIER_GRADE_NAT, None
    if facts.hairpin is Hairpin.REACHED_US:
        return RemoteAccessState.REACHABLE, None
    if gateway.mappings_refused:
        return RemoteAccessState.UNKNOWN, UnknownReason.MAPPINGS_REFUSED
    if web_mappings(facts):
        return RemoteAccessState.REACHABLE, None
    if gateway.truncated:
        return RemoteAccessState.UNKNOWN, UnknownReason.MAPPINGS_INCOMPLETE
    return RemoteAccessState.NO_PORT_FORWARD, None


async def hairpin_probe(
    public_address: str,
    ports: Sequence[int],
    server_name: str,
    our_fingerprints: frozenset[str],
    *,
    timeout_seconds: float = HAIRPIN_TIMEOUT,
    loopback: Callable[[str], str] | None = None,
) -> Hairpin:
    """TLS to ``public_address`` with ``server_name`` as SNI: is it us?

    Routers that do not loop back give `Hairpin.NO_ANSWER`, never "unreachable".
    ``loopback`` maps the public address to the one connected to (tests play
    the router's hairpin NAT with it).
    """
    target = loopback(public_address) if loopback else public_address
    found = Hairpin.NO_ANSWER
    for port in ports[:MAX_HAIRPIN_PROBES]:
        try:
            result = await inspect_endpoint(
                target,
                port,
                server_name=server_name,
                timeout_seconds=timeout_seconds,
            )
        except CertificateError:
            continue
        if result.certificate.fingerprint_sha256 in our_fingerprints:
            return Hairpin.REACHED_US
        found = Hairpin.OTHER_CERTIFICATE
    return found
