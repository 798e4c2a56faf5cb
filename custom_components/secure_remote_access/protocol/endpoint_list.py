"""The endpoint list of the options: ``host[:port] [ca=/path]``, one per line.

No Home Assistant imports. ``https://host[:port][/...]`` is accepted as well
(people paste URLs); other schemes are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import ipaddress
import re
from typing import Any, Final

from .names import normalize_endpoint_host

DEFAULT_ENDPOINT_PORT: Final = 443
_PORT: Final = re.compile(r"[0-9]{1,5}", re.ASCII)
_BRACKETED: Final = re.compile(r"\[([^\]]+)\](?::([^:]*))?")
_SCHEME: Final = re.compile(r"([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


class InvalidEndpointError(ValueError):
    """A line of the endpoint list is not ``host[:port] [ca=/path]``."""

    def __init__(self, line: str) -> None:
        """Remember the offending line."""
        super().__init__(f"not an endpoint: {line!r}")
        self.line = line


class InvalidEndpointListError(ValueError):
    """Some lines of the list are not endpoints: ``lines`` holds (number, text)."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        """Remember every bad line with its number (1-based)."""
        super().__init__(f"not endpoints: {lines!r}")
        self.lines = lines


@dataclass(frozen=True, slots=True)
class EndpointOption:
    """A remote endpoint as stored in the entry's options."""

    host: str
    port: int = DEFAULT_ENDPOINT_PORT
    ca_bundle: str | None = None

    @property
    def label(self) -> str:
        """``host:port``, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def key(self) -> str:
        """The certificate key used in unique IDs and issue IDs."""
        return f"endpoint_{self.label}"

    def to_line(self) -> str:
        """The line of the options form that gives this endpoint."""
        return f"{self.label} ca={self.ca_bundle}" if self.ca_bundle else self.label

    def as_option(self) -> dict[str, Any]:
        """The JSON-friendly form kept in the entry's options."""
        option: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.ca_bundle:
            option["ca_bundle"] = self.ca_bundle
        return option

    @classmethod
    def from_option(cls, option: Mapping[str, Any]) -> EndpointOption:
        """Read back what `as_option` stored."""
        return cls(
            str(option["host"]),
            int(option.get("port", DEFAULT_ENDPOINT_PORT)),
            option.get("ca_bundle") or None,
        )


def _strip_url(target: str, line: str) -> str:
    """``https://host:port/path`` -> ``host:port``; other schemes are refused."""
    if not (match := _SCHEME.match(target)):
        return target
    if match[1].lower() != "https":
        raise InvalidEndpointError(line)
    rest = target[match.end() :]
    return rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _split_host_port(target: str, line: str) -> tuple[str, int]:
    port_text: str | None = None
    if target.startswith("["):
        if not (match := _BRACKETED.fullmatch(target)):
            raise InvalidEndpointError(line)
        host_text, port_text = match[1], match[2]
        try:
            ipaddress.IPv6Address(host_text)
        except ValueError as err:
            raise InvalidEndpointError(line) from err
    elif target.count(":") > 1:
        host_text = target  # a bare IPv6 address: no port
    elif ":" in target:
        host_text, port_text = target.rsplit(":", 1)
    else:
        host_text = target
    port = DEFAULT_ENDPOINT_PORT
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise InvalidEndpointError(line)
        port = int(port_text)
    host = normalize_endpoint_host(host_text)
    if host is None:
        raise InvalidEndpointError(line)
    return host, port


def parse_endpoint(line: str) -> EndpointOption:
    """Parse ``host``, ``host:port``, ``[IPv6]:port`` or an https URL, then ``ca=/path``."""
    tokens = line.split()
    if not tokens:
        raise InvalidEndpointError(line)
    host, port = _split_host_port(_strip_url(tokens[0], line), line)
    ca_bundle: str | None = None
    for token in tokens[1:]:
        name, separator, value = token.partition("=")
        if name.lower() != "ca" or not separator or not value or ca_bundle:
            raise InvalidEndpointError(line)
        ca_bundle = value
    return EndpointOption(host, port, ca_bundle)


def parse_endpoints(text: str) -> list[EndpointOption]:
    """Parse one endpoint per line; blank lines are skipped, repeats dropped.

    Raises `InvalidEndpointListError` naming every bad line.
    """
    endpoints: dict[tuple[str, int], EndpointOption] = {}
    bad: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            endpoint = parse_endpoint(raw.strip())
        except InvalidEndpointError:
            bad.append((number, raw.strip()))
            continue
        endpoints.setdefault((endpoint.host, endpoint.port), endpoint)
    if bad:
        raise InvalidEndpointListError(bad)
    return list(endpoints.values())
