"""What saving new certificate settings does to the certificate on disk.

The flows ask before they save: a certificate that no longer fits the new
settings (`certificate_settings.misfits`) is replaced within a minute of
saving (or once the CA's Retry-After is over), and the screen says so. The renewal coordinator decides the same way
when the entry is set up again with the new settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import re

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .certificate import CurrentCertificate, async_read_current
from .certificate_settings import (
    CertificateFacts,
    CertificateSettings,
    OrderedWith,
    misfits,
)
from .models import SecureRemoteAccessConfigEntry
from .protocol.acme import KeyType
from .protocol.acme.crypto import key_type_of
from .protocol.schedule import RenewalReason
from .renewal_state import RenewalState, renewal_store

UNKNOWN = "?"
NONE = "-"


@dataclass(frozen=True, slots=True)
class CertificateReplacement:
    """The certificate on disk does not fit the new settings: it is replaced."""

    settings: CertificateSettings
    current: CurrentCertificate
    ordered_with: OrderedWith | None
    reasons: tuple[RenewalReason, ...]
    #: The CA asked to wait until then (Retry-After): the order waits too.
    waits_until: datetime | None = None

    @property
    def step_id(self) -> str:
        """The options step that says it: within a minute, or after the CA's wait."""
        return "certificate_renew_later" if self.waits_until else "certificate_renew"

    def placeholders(self) -> dict[str, str]:
        """The certificate on disk beside the new settings; what changes in bold."""
        info, settings, ordered = self.current.info, self.settings, self.ordered_with
        key_type = key_type_of(info.key_type, info.key_size)
        rows = {
            "key_type": (
                _key_label(key_type)
                if key_type
                else f"{info.key_type} {info.key_size or ''}".strip(),
                _key_label(settings.key_type),
                RenewalReason.KEY_TYPE_CHANGED,
            ),
            "names": (
                ", ".join(info.dns_names) or NONE,
                ", ".join(settings.names),
                RenewalReason.NAMES_CHANGED,
            ),
            "ca": (
                ordered.directory_url if ordered else UNKNOWN,
                settings.directory_url,
                RenewalReason.CA_CHANGED,
            ),
            "profile": (
                (ordered.profile or NONE) if ordered else UNKNOWN,
                settings.profile or NONE,
                RenewalReason.PROFILE_CHANGED,
            ),
        }
        placeholders: dict[str, str] = {}
        for key, (now, new, reason) in rows.items():
            placeholders[f"{key}_now"] = _markdown_text(now)
            shown = _markdown_text(new)
            changed = reason in self.reasons
            placeholders[f"{key}_new"] = f"**{shown}**" if changed else shown
        if self.waits_until is not None:
            until = dt_util.as_local(self.waits_until)
            placeholders["until"] = until.strftime("%Y-%m-%d %H:%M")
        return placeholders


async def async_replacement(
    hass: HomeAssistant,
    entry: SecureRemoteAccessConfigEntry,
    settings: CertificateSettings,
) -> CertificateReplacement | None:
    """Whether saving ``settings`` replaces the certificate on disk, and why.

    None when the certificate fits them, or when there is none to replace
    (the first one is ordered right after saving anyway). What the
    certificate was ordered with comes from the entry's renewal state.
    """
    current = await async_read_current(hass, settings)
    if current is None:
        return None
    state = await _async_renewal_state(hass, entry)
    ordered_with = state.ordered_with(current.serial)
    reasons = misfits(settings, CertificateFacts.of(current.info, ordered_with))
    if not reasons:
        return None
    waits_until = state.retry_after_with(settings)
    if waits_until is not None and waits_until <= dt_util.utcnow():
        waits_until = None
    return CertificateReplacement(settings, current, ordered_with, reasons, waits_until)


async def _async_renewal_state(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> RenewalState:
    """The entry's renewal state: its coordinator's, else as stored."""
    if entry.state is ConfigEntryState.LOADED and entry.runtime_data.managed:
        return entry.runtime_data.managed.renewal.state
    return RenewalState.from_json(
        await renewal_store(hass, entry.entry_id).async_load()
    )


def _key_label(key_type: KeyType) -> str:
    """``ECDSA P-384``, ``RSA 2048``: as the key type field names them."""
    algorithm, _, bits = key_type.value.partition("-")
    return f"ECDSA P-{bits[1:]}" if algorithm == "ec" else f"RSA {bits}"


def _markdown_text(text: str) -> str:
    """``text`` as itself in the step's Markdown table (``*.name`` is no emphasis)."""
    return re.sub(r"([\\*_|`])", r"\\\1", text)
