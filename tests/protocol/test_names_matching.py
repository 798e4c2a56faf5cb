"""Tests for protocol/names.py: certificate names against host names (RFC 6125)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from custom_components.secure_remote_access.protocol import names


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.test", "example.test", True),
        ("EXAMPLE.test", "example.TEST", True),
        ("example.test.", "example.test", True),
        ("example.test", "example.test.", True),
        ("example.test", "www.example.test", False),
        ("*.example.test", "www.example.test", True),
        ("*.example.test", "WWW.Example.Test", True),
        ("*.example.test", "example.test", False),
        ("*.example.test", "a.b.example.test", False),
        ("*.example.test", ".example.test", False),
        ("*.test", "example.test", False),
        ("*.com", "example.com", False),
        ("*", "localhost", False),
        ("w*.example.test", "www.example.test", False),
        ("*w.example.test", "www.example.test", False),
        ("www.*.test", "www.example.test", False),
        ("*.*.example.test", "a.b.example.test", False),
        ("*.example.test", "*.example.test", False),
        ("xn--bcher-kva.example", "bücher.example", True),
        ("bücher.example", "xn--bcher-kva.example", True),
        ("*.xn--bcher-kva.example", "www.bücher.example", True),
        ("*.bücher.example", "www.xn--bcher-kva.example", True),
        ("127.0.0.1", "127.0.0.1", False),
        ("example..test", "example..test", False),
        ("", "example.test", False),
        ("example.test", "", False),
    ],
)
def test_hostname_matches(pattern: str, host: str, expected: bool) -> None:
    """RFC 6125 matching rules for DNS-name SANs."""
    assert names.hostname_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("dns_names", "ip_addresses", "host", "expected"),
    [
        ([], ["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], [], "127.0.0.1", False),
        ([], ["::1"], "0:0::1", True),
        ([], ["::1"], "[::1]", True),
        ([], ["127.0.0.1"], "127.0.0.2", False),
        (["*.example.test"], ["127.0.0.1"], "api.example.test", True),
        (["*.example.test"], [], "example.test", False),
    ],
)
def test_names_cover_host(
    dns_names: Sequence[str], ip_addresses: Sequence[str], host: str, expected: bool
) -> None:
    """IP hosts match only IP SANs, names only DNS SANs."""
    assert names.names_cover_host(dns_names, ip_addresses, host) is expected


def test_names_that_cannot_be_idna_encoded_never_match() -> None:
    """A label too long for IDNA matches nothing; a valid IDN matches its A-label."""
    too_long = "\u00fc" * 70 + ".example"
    assert names.hostname_matches(too_long, too_long) is False
    assert names.names_cover_host([too_long], [], too_long) is False
    assert (
        names.hostname_matches("xn--bcher-kva.example", "B\u00fccher.example") is True
    )
