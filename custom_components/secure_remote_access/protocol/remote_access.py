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
from .upnp import GatewayFacts, PortMapping, WanKind, wan_kind
from .x509.errors import CertificateError

#: A name must resolve elsewhere this long before it counts as a mismatch.
DNS_MISMATCH_AFTER: Final = timedelta(minutes=15)
#: A router silent this long no longer vouches for the issues it showed.
GATEWAY_GONE_AFTER: Final = timedelta(days=1)
HAIRPIN_TIMEOUT: Final = 5.0
MAX_HAIRPIN_PROBES: Final = 2
HTTPS_PORT: Final = 443
HTTP_PORT: Final = 80
SSH_PORT: Final = 22


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
    #: Home Assistant serves HTTPS, and nothing forwards to it.
    NO_PORT_FORWARD = "no_port_forward"


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
    WAN_ADDRESS_HIDDEN = "wan_address_hidden"
    WAN_DISCONNECTED = "wan_disconnected"
    GATEWAY_GONE = "gateway_gone"


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything one run collected."""

    recorded_ipv4: str | None
    recorded_ipv6: str | None = None
    #: Addresses per name from DuckDNS's servers; a name missing was not checked.
    resolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Names no server answered for: they may still resolve elsewhere.
    unanswered: frozenset[str] = frozenset()
    #: Since when a name resolves elsewhere (kept by the caller across runs).
    mismatch_since: datetime | None = None
    gateway: GatewayFacts | None = None
    gateway_reason: str | None = None
    #: Since when no gateway answered (kept by the caller across runs).
    gateway_lost_since: datetime | None = None
    host_addresses: frozenset[str] = frozenset()
    ha_port: int = 8123
    serves_https: bool = False
    #: Host ports of SSH add-ons that accept passwords (22 inside the add-on).
    ssh_password_ports: frozenset[int] = frozenset()
    #: False when an SSH add-on could not be read: the SSH finding is unknown.
    ssh_addons_known: bool = True
    hairpin: Hairpin = Hairpin.NOT_TRIED
    #: The external ports of the mappings behind each port finding raised
    #: before (kept by the caller across runs): an incomplete mapping list
    #: clears a finding when the router answered for each of them.
    port_evidence: Mapping[Finding, frozenset[int]] = field(default_factory=dict)
    #: The port our IPv6 pinhole opens for ``recorded_ipv6`` (None: none).
    ipv6_pinhole_port: int | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    """The state, why it is unknown, and the findings with their placeholders."""

    state: RemoteAccessState
    reason: str | None
    findings: Mapping[Finding, Mapping[str, str]]
    #: The findings this run could judge: the others keep their last verdict.
    evaluated: frozenset[Finding] = frozenset(Finding)
    #: The port findings' evidence to keep for the next run (see `Facts`).
    evidence: Mapping[Finding, frozenset[int]] = field(default_factory=dict)


def is_public_ipv4(text: str) -> bool:
    """Whether ``text`` is an IPv4 address a port forward could be reached on."""
    return wan_kind(text) is WanKind.PUBLIC


def reachable_over_ipv6(facts: Facts) -> bool:
    """DuckDNS holds this host's IPv6 address and our pinhole is open for it."""
    return facts.recorded_ipv6 is not None and facts.ipv6_pinhole_port is not None


def behind_nat(facts: Facts) -> bool | None:
    """The carrier-grade NAT verdict: None when the facts cannot tell.

    True for a private or shared WAN address, or one that differs from the
    public address DuckDNS saw; False for the public address itself.
    """
    if facts.gateway is None:
        return None
    wan = facts.gateway.wan_address
    match wan_kind(wan):
        case WanKind.INVALID:
            return None
        case WanKind.BEHIND_NAT:
            return True
    if facts.recorded_ipv4 is None:
        return None
    return wan != facts.recorded_ipv4


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
        and (mapping.all_ports or mapping.internal_port in (facts.ha_port, HTTPS_PORT))
    )


def probe_ports(facts: Facts) -> tuple[int, ...]:
    """External ports the hairpin probe tries: forwarded web ports, else 443."""
    ports = sorted(
        {mapping.external_port or HTTPS_PORT for mapping in web_mappings(facts)}
    )
    return tuple(ports[:MAX_HAIRPIN_PROBES] or [HTTPS_PORT])


def port_finding_mappings(facts: Facts) -> dict[Finding, list[PortMapping]]:
    """The TCP mappings to this host behind each port finding that holds."""
    tcp = [m for m in mappings_to_host(facts) if m.protocol == "TCP"]
    found: dict[Finding, list[PortMapping]] = {}
    # A wildcard mapping (external port 0) forwards every port, these included.
    plain = [m for m in tcp if m.all_ports or m.internal_port == facts.ha_port]
    if plain and not facts.serves_https:
        found[Finding.PLAIN_HTTP_FORWARDED] = plain
    if port_80 := [
        m for m in tcp if m.all_ports or HTTP_PORT in (m.external_port, m.internal_port)
    ]:
        found[Finding.PORT_80_FORWARDED] = port_80
    ssh_ports = facts.ssh_password_ports
    if ssh_ports and (
        ssh := [
            m for m in tcp if m.all_ports or m.internal_port in ssh_ports | {SSH_PORT}
        ]
    ):
        found[Finding.SSH_FORWARDED_WITH_PASSWORD] = ssh
    return found


def _findings(
    facts: Facts, state: RemoteAccessState, ports: Mapping[Finding, list[PortMapping]]
) -> dict[Finding, dict[str, str]]:
    findings: dict[Finding, dict[str, str]] = {}
    # A pinhole reaches the home over IPv6 whatever the NAT in front of IPv4.
    if (
        behind_nat(facts)
        and facts.gateway is not None
        and not reachable_over_ipv6(facts)
    ):
        findings[Finding.CARRIER_GRADE_NAT] = {
            "wan_address": facts.gateway.wan_address or "-",
            "public_address": facts.recorded_ipv4 or "-",
        }
    for finding, mappings in ports.items():
        findings[finding] = {"ports": _ports(mappings)}
    if Finding.PLAIN_HTTP_FORWARDED in findings:
        findings[Finding.PLAIN_HTTP_FORWARDED]["port"] = str(facts.ha_port)
    if state is RemoteAccessState.NO_PORT_FORWARD and facts.serves_https:
        findings[Finding.NO_PORT_FORWARD] = {"port": str(facts.ha_port)}
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
        f"{m.external_port or '*'} → {m.internal_port}"
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
    ports = port_finding_mappings(facts)
    findings = _findings(facts, state, ports)
    gateway = facts.gateway
    if gateway is None:
        if not _gateway_gone(facts, now):
            evaluated = {Finding.DNS_MISMATCH}
        # Silent for a day: the router's findings are judged again (as none).
    elif gateway.incomplete:
        # An incomplete list can show a forward, never that there is none,
        # unless the router answered for every port that raised the finding.
        for finding in PORT_FINDINGS - findings.keys():
            before = facts.port_evidence.get(finding)
            if not before or not before <= gateway.known_ports:
                evaluated.discard(finding)
    if behind_nat(facts) is None and gateway is not None:
        evaluated.discard(Finding.CARRIER_GRADE_NAT)
    if not facts.ssh_addons_known and Finding.SSH_FORWARDED_WITH_PASSWORD not in (
        findings
    ):
        evaluated.discard(Finding.SSH_FORWARDED_WITH_PASSWORD)
    if not facts.resolved or (
        facts.unanswered and Finding.DNS_MISMATCH not in findings
    ):
        # Only answers for every name can clear a mismatch.
        evaluated.discard(Finding.DNS_MISMATCH)
    return Judgement(
        state,
        reason,
        findings,
        frozenset(evaluated),
        _evidence(facts, ports, frozenset(evaluated)),
    )


def _evidence(
    facts: Facts,
    ports: Mapping[Finding, list[PortMapping]],
    evaluated: frozenset[Finding],
) -> dict[Finding, frozenset[int]]:
    """The ports behind each port finding still raised after this run."""
    evidence: dict[Finding, frozenset[int]] = {}
    gateway = facts.gateway
    for finding in PORT_FINDINGS:
        before = facts.port_evidence.get(finding, frozenset())
        if finding in ports:
            now = frozenset(m.external_port for m in ports[finding])
            if gateway is not None and gateway.incomplete:
                # Ports seen before and not answered for now may still be open.
                now |= before - gateway.known_ports
            evidence[finding] = now
        elif finding not in evaluated and before:
            evidence[finding] = before
    return evidence


def _gateway_gone(facts: Facts, now: datetime) -> bool:
    """No gateway has answered for `GATEWAY_GONE_AFTER`: its issues go."""
    since = facts.gateway_lost_since
    return (
        facts.gateway is None
        and since is not None
        and now - since >= GATEWAY_GONE_AFTER
    )


def _state(facts: Facts, now: datetime) -> tuple[RemoteAccessState, str | None]:
    if (
        facts.mismatch_since is not None
        and now - facts.mismatch_since >= DNS_MISMATCH_AFTER
        and mismatched_names(facts.resolved, facts.recorded_ipv4, facts.recorded_ipv6)
    ):
        return RemoteAccessState.DNS_MISMATCH, None
    if reachable_over_ipv6(facts):
        return RemoteAccessState.REACHABLE, None
    gateway = facts.gateway
    if gateway is None:
        if _gateway_gone(facts, now):
            return RemoteAccessState.UNKNOWN, UnknownReason.GATEWAY_GONE
        return RemoteAccessState.UNKNOWN, facts.gateway_reason or "no_gateway"
    if gateway.disconnected and wan_kind(gateway.wan_address) is WanKind.INVALID:
        return RemoteAccessState.UNKNOWN, UnknownReason.WAN_DISCONNECTED
    if gateway.wan_address is None and gateway.wan_address_hidden:
        return RemoteAccessState.UNKNOWN, UnknownReason.WAN_ADDRESS_HIDDEN
    if wan_kind(gateway.wan_address) is WanKind.INVALID:
        return RemoteAccessState.UNKNOWN, UnknownReason.WAN_ADDRESS_UNKNOWN
    nat = behind_nat(facts)
    if nat:
        return RemoteAccessState.CARRIER_GRADE_NAT, None
    if nat is None:
        return RemoteAccessState.UNKNOWN, UnknownReason.NO_IPV4
    if facts.hairpin is Hairpin.REACHED_US or web_mappings(facts):
        return RemoteAccessState.REACHABLE, None
    if gateway.mappings_refused:
        return RemoteAccessState.UNKNOWN, UnknownReason.MAPPINGS_REFUSED
    if gateway.incomplete:
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
