"""The endpoint list of the options: syntax, URLs, every bad line named."""

from __future__ import annotations

import pytest

from custom_components.secure_remote_access.const import MAX_ENDPOINTS
from custom_components.secure_remote_access.helpers import endpoints_from_options
from custom_components.secure_remote_access.protocol.endpoint_list import (
    EndpointOption,
    InvalidEndpointError,
    InvalidEndpointListError,
    parse_endpoint,
    parse_endpoints,
)
from custom_components.secure_remote_access.protocol.names import (
    normalize_endpoint_host,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("example.test", EndpointOption("example.test", 443)),
        ("Example.TEST.:8443", EndpointOption("example.test", 8443)),
        ("nas", EndpointOption("nas", 443)),
        ("my_host.lan:1", EndpointOption("my_host.lan", 1)),
        ("bücher.example", EndpointOption("xn--bcher-kva.example", 443)),
        ("192.0.2.1:65535", EndpointOption("192.0.2.1", 65535)),
        ("2001:DB8::1", EndpointOption("2001:db8::1", 443)),
        ("[2001:db8::1]:8443", EndpointOption("2001:db8::1", 8443)),
        ("[::1]", EndpointOption("::1", 443)),
        (
            "example.test:993 CA=/ssl/ca.pem",
            EndpointOption("example.test", 993, "/ssl/ca.pem"),
        ),
        ("https://example.test", EndpointOption("example.test", 443)),
        ("HTTPS://Example.test:8443/", EndpointOption("example.test", 8443)),
        ("https://[2001:db8::1]:8443/x?y#z", EndpointOption("2001:db8::1", 8443)),
        (
            "https://nas.lan/ ca=/ssl/ca.pem",
            EndpointOption("nas.lan", 443, "/ssl/ca.pem"),
        ),
    ],
)
def test_parse_endpoint(line: str, expected: EndpointOption) -> None:
    """Host names, IPv4 and IPv6 addresses, ports and CA bundles."""
    assert parse_endpoint(line) == expected
    assert parse_endpoint(expected.to_line()) == expected
    assert EndpointOption.from_option(expected.as_option()) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "example.test:",
        "example.test:00000443",
        "example.test:-1",
        "example.test:٤٤٣",
        "[2001:db8::1",
        "[2001:db8::1]:",
        "[192.0.2.1]:443",
        "*.example.test",
        "example..test",
        "10.1",
        "1.2.3",
        f"{'a' * 64}.test",
        f"{'a.' * 127}test",
        "example.test ca=/a.pem ca=/b.pem",
        "example.test sni=other.test",
        "http://example.test",
        "ftp://example.test:21",
        "https://",
    ],
)
def test_parse_endpoint_rejects(line: str) -> None:
    """Anything else is refused with the offending line."""
    with pytest.raises(InvalidEndpointError) as caught:
        parse_endpoint(line)
    assert caught.value.line == line


def test_parse_endpoints_skips_blanks_and_repeats() -> None:
    """Blank lines go; the first of two lines for the same endpoint wins."""
    text = "\n  a.test  \n\r\na.test:443 ca=/x.pem\nb.test:8443\n"
    assert parse_endpoints(text) == [
        EndpointOption("a.test"),
        EndpointOption("b.test", 8443),
    ]
    assert len(parse_endpoints("\n".join(f"h{n}.test" for n in range(99)))) == 99
    assert MAX_ENDPOINTS == 50


def test_endpoint_labels_and_options() -> None:
    """Labels bracket IPv6 addresses; options round-trip."""
    assert EndpointOption("2001:db8::1", 443).label == "[2001:db8::1]:443"
    assert EndpointOption("a.test", 8443, "/ca.pem").key == "endpoint_a.test:8443"
    options = {"endpoints": [{"host": "a.test"}, {"host": "b.test", "port": 1}]}
    assert endpoints_from_options(options) == [
        EndpointOption("a.test"),
        EndpointOption("b.test", 1),
    ]
    assert endpoints_from_options({}) == []
    assert normalize_endpoint_host("") is None
    assert normalize_endpoint_host(".") is None


def test_every_bad_line_is_named_with_its_number() -> None:
    """Not only the first: each bad line, numbered as the user sees it."""
    text = "good.test\nmy host\n\nhttp://plain.test\nother.test:99999\nok.test:8443"
    with pytest.raises(InvalidEndpointListError) as caught:
        parse_endpoints(text)
    assert caught.value.lines == [
        (2, "my host"),
        (4, "http://plain.test"),
        (5, "other.test:99999"),
    ]
