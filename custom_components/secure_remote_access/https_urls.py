"""Which of Home Assistant's URLs a change of scheme breaks, and what replaces them.

Pure functions: the caller passes the configured URLs, the server port and
what the product itself set earlier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from yarl import URL

EXTERNAL_URL: Final = "external_url"
INTERNAL_URL: Final = "internal_url"
URL_KEYS: Final = (EXTERNAL_URL, INTERNAL_URL)


@dataclass(frozen=True, slots=True)
class UrlChange:
    """One of Home Assistant's URLs, as it is and as the change would set it."""

    key: str
    current: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class SetUrl:
    """A URL the product set: what it was before and what it set."""

    before: str | None
    after: str | None


def _parsed(url: str | None) -> URL | None:
    if not url:
        return None
    try:
        parsed = URL(url)
    except ValueError:
        return None
    return parsed if parsed.scheme in ("http", "https") and parsed.host else None


def reaches_port(url: str | None, scheme: str, port: int) -> bool:
    """``url`` uses ``scheme`` straight to Home Assistant's ``port``."""
    parsed = _parsed(url)
    return parsed is not None and parsed.scheme == scheme and parsed.port == port


def changes_for_serving(
    urls: Mapping[str, str | None],
    port: int,
    https_url: str,
    covers: Callable[[str], bool] = lambda _host: True,
) -> list[UrlChange]:
    """The URLs serving HTTPS breaks (or leaves without HTTPS), all to ``https_url``.

    The external URL when it is empty or plain HTTP (whatever its port: a
    router may forward another one); the internal URL when it is plain HTTP
    straight to Home Assistant's port, as ``http://homeassistant.local:8123``;
    either when it is HTTPS straight to that port for a host the certificate
    does not ``cover`` (another entry's name served until now).
    """
    changes = []
    external = urls.get(EXTERNAL_URL)
    parsed = _parsed(external)
    if (
        not external
        or (parsed is not None and parsed.scheme == "http")
        or _uncovered(external, port, covers)
    ):
        changes.append(UrlChange(EXTERNAL_URL, external, https_url))
    internal = urls.get(INTERNAL_URL)
    if reaches_port(internal, "http", port) or _uncovered(internal, port, covers):
        changes.append(UrlChange(INTERNAL_URL, internal, https_url))
    return changes


def _uncovered(url: str | None, port: int, covers: Callable[[str], bool]) -> bool:
    """``url`` is HTTPS straight to ``port`` for a host the certificate misses."""
    parsed = _parsed(url)
    return (
        reaches_port(url, "https", port)
        and parsed is not None
        and parsed.host is not None
        and not covers(parsed.host)
    )


def changes_for_stopping(
    urls: Mapping[str, str | None], port: int, set_by_us: Mapping[str, SetUrl]
) -> list[UrlChange]:
    """The URLs plain HTTP breaks, and what replaces them.

    A URL the product set while serving goes back to what it was; another
    ``https://`` URL to Home Assistant's port keeps its address with ``http``.
    """
    changes = []
    for key in URL_KEYS:
        current = urls.get(key)
        ours = set_by_us.get(key)
        if ours is not None and ours.after == current:
            changes.append(UrlChange(key, current, ours.before))
        elif reaches_port(current, "https", port):
            parsed = _parsed(current)
            assert parsed is not None
            plain = parsed.with_scheme("http").with_port(port)
            changes.append(UrlChange(key, current, str(plain)))
    return changes
