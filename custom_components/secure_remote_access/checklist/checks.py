"""The security checks: pure functions of a snapshot, and their registry.

Each check returns a ``Finding`` when the installation fails it and ``None``
when it passes or when the snapshot does not know enough to judge. A check
never puts a secret in a finding: the snapshot does not hold any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Final
from urllib.parse import urlsplit

from awesomeversion import AwesomeVersion, AwesomeVersionException

from .models import ChecklistResult, Finding, Severity, Snapshot

type Check = Callable[[Snapshot], Finding | None]

HTTP_DOCS: Final = "https://www.home-assistant.io/integrations/http/"
SECURING_DOCS: Final = "https://www.home-assistant.io/docs/configuration/securing/"
AUTH_PROVIDERS_DOCS: Final = (
    "https://www.home-assistant.io/docs/authentication/providers/#trusted-networks"
)
MFA_DOCS: Final = "https://www.home-assistant.io/docs/authentication/multi-factor-auth/"
SECRETS_DOCS: Final = "https://www.home-assistant.io/docs/configuration/secrets/"
ADVISORIES_URL: Final = "https://github.com/home-assistant/core/security/advisories"
CORE_INSTALL_DOCS: Final = (
    "https://www.home-assistant.io/installation/linux#install-home-assistant-core"
)
SSH_DOCS: Final = "https://github.com/home-assistant/addons/blob/master/ssh/DOCS.md"

CORE_INSTALLATION: Final = "Home Assistant Core"
ADDON_CORE_SSH: Final = "core_ssh"
ADDON_COMMUNITY_SSH: Final = "a0d7b954_ssh"
SSH_ADDONS: Final = (ADDON_CORE_SSH, ADDON_COMMUNITY_SSH)


@dataclass(frozen=True, slots=True)
class Advisory:
    """A published advisory for Home Assistant Core and the first fixed version."""

    advisory_id: str
    fixed_in: str


# Mirrors "Security advisories with a minimum safe version" in the project's
# references (docs/references.md); add new advisories here.
ADVISORIES: Final[tuple[Advisory, ...]] = (
    Advisory("CVE-2023-27482", "2023.3.2"),
    *(Advisory(f"CVE-2023-{number}", "2023.9.0") for number in range(41893, 41900)),
    Advisory("CVE-2023-50715", "2023.12.3"),
    Advisory("GHSA-5hxg-r395-fqxx", "2026.6.0"),
)


def _network(value: str) -> IPv4Network | IPv6Network | None:
    try:
        return ip_network(value, strict=False)
    except ValueError:
        return None


def is_public_or_catch_all(value: str) -> bool:
    """True for a network that reaches beyond private addresses, or everything.

    Shared address space (100.64.0.0/10, used by carrier-grade NAT and VPNs
    such as Tailscale) is not public; a network mixing private and public
    addresses (10.0.0.0/7) is.
    """
    network = _network(value)
    if network is None:
        return False
    return network.prefixlen == 0 or network.is_global


def display_url(url: str) -> str:
    """Scheme, host and port of a URL: never a user name or password in it."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url.rpartition("@")[2]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _names(items: list[str] | tuple[str, ...]) -> str:
    return ", ".join(items)


def _listing(
    check_id: str, severity: Severity, key: str, items: list[str], sentence: str
) -> Finding | None:
    """A finding that lists ``items`` (under ``key`` and in ``sentence``'s ``{}``), or None."""
    if not items:
        return None
    listed = _names(items)
    return Finding(check_id, severity, sentence.format(listed), {key: listed})


def check_http_without_tls(snapshot: Snapshot) -> Finding | None:
    """Plain HTTP with an external URL, no trusted proxy and no Home Assistant Cloud."""
    http = snapshot.http
    if http is None or snapshot.external_url is None or http.tls:
        return None
    if (http.use_x_forwarded_for and http.trusted_proxies) or snapshot.cloud_remote_ui:
        return None
    url = display_url(snapshot.external_url)
    return Finding(
        "http_without_tls",
        Severity.ERROR,
        f"Home Assistant serves plain HTTP while reachable at {url}, "
        "without a trusted proxy or Home Assistant Cloud in front.",
        {"external_url": url},
    )


def check_external_url_not_https(snapshot: Snapshot) -> Finding | None:
    """The external URL uses http://."""
    if snapshot.external_url is None:
        return None
    if urlsplit(snapshot.external_url).scheme.lower() != "http":
        return None
    url = display_url(snapshot.external_url)
    return Finding(
        "external_url_not_https",
        Severity.WARNING,
        f"The external URL {url} uses http:// instead of https://.",
        {"external_url": url},
    )


def check_login_ban_disabled(snapshot: Snapshot) -> Finding | None:
    """IP banning is off, or the login attempts threshold never bans anyone."""
    http = snapshot.http
    if http is None:
        return None
    if http.ip_ban_enabled and http.login_attempts_threshold > 0:
        return None
    return Finding(
        "login_ban_disabled",
        Severity.WARNING,
        "Addresses are never banned after failed logins "
        f"(ip_ban_enabled: {str(http.ip_ban_enabled).lower()}, "
        f"login_attempts_threshold: {http.login_attempts_threshold}).",
        {
            "ip_ban_enabled": str(http.ip_ban_enabled).lower(),
            "login_attempts_threshold": str(http.login_attempts_threshold),
        },
    )


def check_trusted_networks_bypass_login(snapshot: Snapshot) -> Finding | None:
    """A trusted_networks provider logs users in without the login screen."""
    bypassing = [p for p in snapshot.trusted_networks if p.allow_bypass_login]
    if not bypassing:
        return None
    networks = [network for provider in bypassing for network in provider.networks]
    return Finding(
        "trusted_networks_bypass_login",
        Severity.WARNING,
        "The trusted networks login skips the login screen "
        f"for {_names(networks) or 'its networks'}.",
        {"networks": _names(networks)},
    )


def check_trusted_networks_public_range(snapshot: Snapshot) -> Finding | None:
    """A trusted_networks provider trusts public or catch-all ranges."""
    networks = [
        network
        for provider in snapshot.trusted_networks
        for network in provider.networks
        if is_public_or_catch_all(network)
    ]
    return _listing(
        "trusted_networks_public_range",
        Severity.CRITICAL,
        "networks",
        networks,
        "The trusted networks login trusts public ranges: {}.",
    )


def check_trusted_proxies_too_broad(snapshot: Snapshot) -> Finding | None:
    """trusted_proxies contains public or catch-all ranges."""
    if snapshot.http is None:
        return None
    networks = [
        proxy
        for proxy in snapshot.http.trusted_proxies
        if is_public_or_catch_all(proxy)
    ]
    return _listing(
        "trusted_proxies_too_broad",
        Severity.ERROR,
        "networks",
        networks,
        "trusted_proxies contains public ranges: {}.",
    )


def check_admin_without_mfa(snapshot: Snapshot) -> Finding | None:
    """Active, non-system administrators without multi-factor authentication."""
    names = sorted(
        user.name
        for user in snapshot.users
        if user.is_admin
        and user.is_active
        and not user.system_generated
        and not user.mfa_modules
    )
    if not names:
        return None
    return Finding(
        "admin_without_mfa",
        Severity.WARNING,
        f"Administrators without multi-factor authentication: {len(names)}.",
        {"count": str(len(names)), "users": _names(names)},
    )


def check_running_as_root(snapshot: Snapshot) -> Finding | None:
    """A Home Assistant Core installation running as root."""
    if (
        snapshot.installation_type != CORE_INSTALLATION
        or snapshot.run_as_user != "root"
    ):
        return None
    return Finding(
        "running_as_root",
        Severity.WARNING,
        "Home Assistant Core runs as the root user.",
        {},
    )


def _ssh_addons(snapshot: Snapshot, *, root: bool) -> list[str]:
    """The running SSH add-ons with an open port that accept root (or password) logins."""
    return [
        addon.name
        for addon in snapshot.ssh_addons
        if addon.running
        and addon.port_exposed
        and (addon.root_login if root else addon.password_login)
    ]


def check_ssh_password_login(snapshot: Snapshot) -> Finding | None:
    """A running SSH add-on with an open port that accepts passwords."""
    return _listing(
        "ssh_password_login",
        Severity.WARNING,
        "addons",
        _ssh_addons(snapshot, root=False),
        "The SSH add-on {} accepts password logins.",
    )


def check_ssh_root_login(snapshot: Snapshot) -> Finding | None:
    """A running SSH add-on with an open port that logs users in as root."""
    return _listing(
        "ssh_root_login",
        Severity.ERROR,
        "addons",
        _ssh_addons(snapshot, root=True),
        "The SSH add-on {} accepts logins as root.",
    )


def check_secrets_inline(snapshot: Snapshot) -> Finding | None:
    """Credentials written in the YAML configuration instead of !secret."""
    scan = snapshot.secrets
    if scan is None or scan.inline == 0:
        return None
    return Finding(
        "secrets_inline",
        Severity.WARNING,
        f"Credentials written inline instead of !secret in {_names(scan.files)} "
        f"(values found: {scan.inline}).",
        {"count": str(scan.inline), "files": _names(scan.files)},
    )


def vulnerable_advisories(version: str) -> list[Advisory]:
    """The advisories whose fix is newer than ``version``."""
    try:
        running = AwesomeVersion(version)
        return [a for a in ADVISORIES if running < AwesomeVersion(a.fixed_in)]
    except AwesomeVersionException:
        return []


def check_core_version_vulnerable(snapshot: Snapshot) -> Finding | None:
    """The running version is older than the fix of a published advisory."""
    if not (advisories := vulnerable_advisories(snapshot.version)):
        return None
    ids = [advisory.advisory_id for advisory in advisories]
    minimum = max((a.fixed_in for a in advisories), key=AwesomeVersion)
    return Finding(
        "core_version_vulnerable",
        Severity.CRITICAL,
        f"Home Assistant {snapshot.version} is affected by {_names(ids)}; "
        f"update to {minimum} or newer.",
        {
            "version": snapshot.version,
            "advisories": _names(ids),
            "minimum_version": minimum,
        },
    )


def check_private_key_world_readable(snapshot: Snapshot) -> Finding | None:
    """A private key file readable by its group or by everyone."""
    loose = [
        key for key in snapshot.key_files if key.mode is not None and key.mode & 0o044
    ]
    if not loose:
        return None
    return Finding(
        "private_key_world_readable",
        Severity.ERROR,
        f"Private key files can be read by other users: "
        f"{_names([key.path for key in loose])}.",
        {
            "paths": _names([key.path for key in loose]),
            "modes": _names([f"{key.mode:04o}" for key in loose]),
        },
    )


def check_x_frame_options_disabled(snapshot: Snapshot) -> Finding | None:
    """The X-Frame-Options header is turned off."""
    if snapshot.http is None or snapshot.http.use_x_frame_options:
        return None
    return Finding(
        "x_frame_options_disabled",
        Severity.WARNING,
        "The X-Frame-Options header is off: other sites can embed Home Assistant.",
        {},
    )


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A registered check: its public id, its function and where to learn more."""

    check_id: str
    check: Check
    learn_more_url: str


CHECKS: Final[tuple[CheckSpec, ...]] = (
    CheckSpec("http_without_tls", check_http_without_tls, SECURING_DOCS),
    CheckSpec("external_url_not_https", check_external_url_not_https, SECURING_DOCS),
    CheckSpec(
        "login_ban_disabled", check_login_ban_disabled, f"{HTTP_DOCS}#ip_ban_enabled"
    ),
    CheckSpec(
        "trusted_networks_bypass_login",
        check_trusted_networks_bypass_login,
        AUTH_PROVIDERS_DOCS,
    ),
    CheckSpec(
        "trusted_networks_public_range",
        check_trusted_networks_public_range,
        AUTH_PROVIDERS_DOCS,
    ),
    CheckSpec(
        "trusted_proxies_too_broad",
        check_trusted_proxies_too_broad,
        f"{HTTP_DOCS}#trusted_proxies",
    ),
    CheckSpec("admin_without_mfa", check_admin_without_mfa, MFA_DOCS),
    CheckSpec("running_as_root", check_running_as_root, CORE_INSTALL_DOCS),
    CheckSpec("ssh_password_login", check_ssh_password_login, SSH_DOCS),
    CheckSpec("ssh_root_login", check_ssh_root_login, SSH_DOCS),
    CheckSpec("secrets_inline", check_secrets_inline, SECRETS_DOCS),
    CheckSpec("core_version_vulnerable", check_core_version_vulnerable, ADVISORIES_URL),
    CheckSpec(
        "private_key_world_readable",
        check_private_key_world_readable,
        f"{HTTP_DOCS}#ssl_key",
    ),
    CheckSpec(
        "x_frame_options_disabled",
        check_x_frame_options_disabled,
        f"{HTTP_DOCS}#use_x_frame_options",
    ),
)

CHECK_IDS: Final[tuple[str, ...]] = tuple(spec.check_id for spec in CHECKS)
CHECKS_BY_ID: Final[dict[str, CheckSpec]] = {spec.check_id: spec for spec in CHECKS}


def evaluate(
    snapshot: Snapshot, disabled: frozenset[str] = frozenset()
) -> ChecklistResult:
    """Run every enabled check of the registry on one snapshot."""
    findings: list[Finding] = []
    passed: list[str] = []
    skipped: list[str] = []
    for spec in CHECKS:
        if spec.check_id in disabled:
            skipped.append(spec.check_id)
        elif (finding := spec.check(snapshot)) is None:
            passed.append(spec.check_id)
        else:
            findings.append(finding)
    return ChecklistResult(tuple(findings), tuple(passed), tuple(skipped))
