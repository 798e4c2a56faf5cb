"""The snapshot of an installation and the findings of the checks.

Nothing here imports Home Assistant: the checks are pure functions of these
frozen values, so each one is unit-tested on a hand-built snapshot. The
snapshot never holds a secret: add-on options and YAML values are reduced to
booleans and counts while they are collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How bad a finding is; the values are those of Repairs issues."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The settings the running HTTP server was started with."""

    ssl_certificate: str | None = None
    ssl_key: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    use_x_forwarded_for: bool = False
    ip_ban_enabled: bool = True
    login_attempts_threshold: int = -1
    use_x_frame_options: bool = True

    @property
    def tls(self) -> bool:
        """True when Home Assistant itself serves HTTPS."""
        return self.ssl_certificate is not None


@dataclass(frozen=True, slots=True)
class TrustedNetworksProvider:
    """A trusted_networks auth provider."""

    allow_bypass_login: bool
    networks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user and the multi-factor modules the user has set up."""

    name: str
    is_admin: bool
    is_active: bool
    system_generated: bool
    mfa_modules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SshAddon:
    """What an installed SSH add-on accepts; never its option values."""

    slug: str
    name: str
    running: bool
    port_exposed: bool
    password_login: bool
    root_login: bool
    #: The host port mapped to the add-on's 22/tcp (None: closed).
    host_port: int | None = None


@dataclass(frozen=True, slots=True)
class SecretsScan:
    """Credentials written inline in the YAML configuration: counts only."""

    inline: int = 0
    files: tuple[str, ...] = ()
    scanned_files: int = 0


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A private key file and its permission bits (None: not readable)."""

    path: str
    mode: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the checks look at, collected once per run.

    ``None`` means "not known": the checks that need it pass.
    """

    version: str
    installation_type: str | None = None
    run_as_user: str | None = None
    external_url: str | None = None
    cloud_remote_ui: bool = False
    http: HttpSettings | None = None
    trusted_networks: tuple[TrustedNetworksProvider, ...] = ()
    users: tuple[UserInfo, ...] = ()
    supervisor: bool = False
    ssh_addons: tuple[SshAddon, ...] = ()
    secrets: SecretsScan | None = None
    key_files: tuple[KeyFile, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """A failing check: what is wrong, in placeholders and one English sentence."""

    check_id: str
    severity: Severity
    summary: str
    placeholders: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChecklistResult:
    """The outcome of one run: findings of enabled checks and the passed ids."""

    findings: tuple[Finding, ...]
    passed: tuple[str, ...]
    disabled: tuple[str, ...] = ()

    @property
    def failing_ids(self) -> list[str]:
        """The ids of the failing checks, in registry order."""
        return [finding.check_id for finding in self.findings]

    def finding(self, check_id: str) -> Finding | None:
        """The finding of one check, None when it passed or is disabled."""
        return next((f for f in self.findings if f.check_id == check_id), None)
