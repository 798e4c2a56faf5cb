"""End-to-end tests of the ACME client against Pebble 2.10 and pebble-challtestsrv."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AccountDoesNotExistError,
    AccountKey,
    AcmeClient,
    AlreadyReplacedError,
    AuthorizationInvalidError,
    DnsPropagationChecker,
    DnsPropagationTimeoutError,
    ExternalAccountBinding,
    ExternalAccountRequiredError,
    InvalidProfileError,
    IssuedCertificate,
    KeyType,
    RejectedIdentifierError,
    UnauthorizedError,
    dns01_txt_value,
)
from custom_components.secure_remote_access.protocol.acme.crypto import (
    top_issuer_common_name,
)
from custom_components.secure_remote_access.protocol.acme.messages import STATUS_VALID
from custom_components.secure_remote_access.protocol.x509.parse import (
    parse_pem_certificates,
)
from tests.fakes.pebble import DEFAULT_EAB_KEYS, DuckDnsLikeSolver, PebbleServer

pytestmark = pytest.mark.pebble


async def _verify_chain(
    pebble: PebbleServer, issued: IssuedCertificate, root_index: int = 0
) -> None:
    """The chain verifies, for every name, up to Pebble's root ``root_index``."""
    root = x509.load_pem_x509_certificate((await pebble.root_pem(root_index)).encode())
    leaf, *intermediates = parse_pem_certificates(issued.fullchain_pem)
    builder = PolicyBuilder().store(Store([root])).time(datetime.now(UTC))
    for name in issued.names:
        host = name.replace("*", "host", 1)  # a wildcard covers one concrete label
        verifier = builder.build_server_verifier(DNSName(host))
        chain = verifier.verify(leaf, intermediates)
        assert chain[-1] == root


def _leaf(issued: IssuedCertificate) -> x509.Certificate:
    return parse_pem_certificates(issued.fullchain_pem)[0]


async def test_directory_meta_and_account_lookup(
    make_client: Callable[..., AcmeClient],
) -> None:
    """Create an account with a contact, then find it again by key; unknown keys have none."""
    client = make_client()
    directory = await client.directory()
    assert directory.terms_of_service
    assert set(directory.profiles) == {"default", "shortlived"}
    assert directory.external_account_required is False
    assert directory.renewal_info is not None

    account = await client.register_account(
        terms_of_service_agreed=True, contact_email="admin@example.com"
    )
    assert account.status == STATUS_VALID
    assert account.contact == ("mailto:admin@example.com",)

    again = make_client(client.account_key)
    found = await again.find_account()
    assert found.url == account.url
    assert again.account_url == account.url

    with pytest.raises(AccountDoesNotExistError):
        await make_client().find_account()


async def test_first_issuance(
    pebble: PebbleServer,
    client: AcmeClient,
    solver: DuckDnsLikeSolver,
    checker: DnsPropagationChecker,
) -> None:
    """Issue for myhome.duckdns.org: fresh P-256 key, full result, chain verifies, TXT cleared."""
    issued = await client.issue_certificate(["myhome.duckdns.org"], solver, checker)
    leaf = _leaf(issued)
    assert issued.names == ("myhome.duckdns.org",)
    assert issued.serial_hex == format(leaf.serial_number, "x")
    assert issued.not_before.tzinfo is UTC
    assert issued.not_after.tzinfo is UTC
    assert issued.not_before <= datetime.now(UTC) < issued.not_after
    assert issued.account_url == client.account_url
    assert issued.ari_cert_id is not None
    assert issued.ari_cert_id.endswith("." + issued.ari_cert_id.split(".")[1])
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), None)
    assert issued.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert key.public_key() == leaf.public_key()
    assert key.public_key() != client.account_key.public_key
    await _verify_chain(pebble, issued)
    assert solver.values == {}
    assert solver.cleared == ["myhome.duckdns.org"]
    assert await checker.lookup_txt("_acme-challenge.myhome.duckdns.org") == ()


async def test_wildcard_and_base_share_one_txt_value(
    pebble: PebbleServer,
    client: AcmeClient,
    solver: DuckDnsLikeSolver,
    checker: DnsPropagationChecker,
) -> None:
    """Two challenges answered one at a time through the domain's single TXT value."""
    issued = await client.issue_certificate(
        ["wild.duckdns.org", "*.wild.duckdns.org"], solver, checker
    )
    san = (
        _leaf(issued)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert sorted(san.get_values_for_type(x509.DNSName)) == [
        "*.wild.duckdns.org",
        "wild.duckdns.org",
    ]
    assert [domain for domain, _ in solver.history] == ["wild.duckdns.org"] * 2
    assert solver.history[0][1] != solver.history[1][1]
    assert solver.values == {}
    await _verify_chain(pebble, issued)


async def test_setting_both_values_at_once_fails(
    client: AcmeClient, solver: DuckDnsLikeSolver
) -> None:
    """Control: with DuckDNS semantics, publishing both values before validating loses one."""
    order = await client.new_order(["both.duckdns.org", "*.both.duckdns.org"])
    authzs = [await client.get_authorization(url) for url in order.authorizations]
    challenges = [authz.challenge("dns-01") for authz in authzs]
    for authz, challenge in zip(authzs, challenges, strict=True):
        assert challenge is not None
        assert challenge.token is not None
        await solver.set_txt(
            authz.identifier.value,
            dns01_txt_value(challenge.token, client.account_key.thumbprint),
        )
    for challenge in challenges:
        assert challenge is not None
        await client.respond_to_challenge(challenge.url)
    results = await asyncio.gather(
        *(client.wait_for_authorization(authz.url) for authz in authzs),
        return_exceptions=True,
    )
    await solver.clear_txt("both.duckdns.org")
    failures = [item for item in results if isinstance(item, AuthorizationInvalidError)]
    assert len(failures) == 1
    assert failures[0].problem is not None
    assert failures[0].problem.detail


@pytest.mark.parametrize(
    ("key_type", "key_class", "size"),
    [
        (KeyType.EC_P384, ec.EllipticCurvePublicKey, 384),
        (KeyType.RSA_2048, rsa.RSAPublicKey, 2048),
    ],
)
async def test_other_key_types(
    pebble: PebbleServer,
    client: AcmeClient,
    solver: DuckDnsLikeSolver,
    checker: DnsPropagationChecker,
    key_type: KeyType,
    key_class: type[Any],
    size: int,
) -> None:
    """ECDSA P-384 and RSA certificates."""
    issued = await client.issue_certificate(
        [f"{key_type.value}.duckdns.org"], solver, checker, key_type=key_type
    )
    public = _leaf(issued).public_key()
    assert isinstance(public, key_class)
    assert public.key_size == size
    await _verify_chain(pebble, issued)


async def test_renewal_with_replaces(
    client: AcmeClient, solver: DuckDnsLikeSolver, checker: DnsPropagationChecker
) -> None:
    """A renewal names its predecessor; a second replacement of it is refused."""
    first = await client.issue_certificate(["renew.duckdns.org"], solver, checker)
    assert first.ari_cert_id is not None
    second = await client.issue_certificate(
        ["renew.duckdns.org"], solver, checker, replaces=first.ari_cert_id
    )
    assert second.serial_hex != first.serial_hex
    assert second.private_key_pem != first.private_key_pem
    with pytest.raises(AlreadyReplacedError) as caught:
        await client.new_order(["renew.duckdns.org"], replaces=first.ari_cert_id)
    assert caught.value.status is not None


async def test_profile_selection(
    client: AcmeClient,
    solver: DuckDnsLikeSolver,
    checker: DnsPropagationChecker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shortlived profile gives a 6-day certificate; an unknown profile orders nothing."""
    issued = await client.issue_certificate(
        ["short.duckdns.org"], solver, checker, profile="shortlived"
    )
    assert issued.profile == "shortlived"
    assert issued.not_after - issued.not_before < timedelta(days=6, minutes=1)

    posts: list[str] = []
    original = client._transport.post

    async def counting_post(url: str, *args: Any, **kwargs: Any) -> Any:
        posts.append(url)
        return await original(url, *args, **kwargs)

    monkeypatch.setattr(client._transport, "post", counting_post)
    with pytest.raises(InvalidProfileError):
        await client.issue_certificate(
            ["short.duckdns.org"], solver, checker, profile="nope"
        )
    assert posts == []


async def test_ari_renewal_window(
    pebble: PebbleServer,
    client: AcmeClient,
    solver: DuckDnsLikeSolver,
    checker: DnsPropagationChecker,
) -> None:
    """The default window lies inside the validity; a window set on Pebble is returned as is."""
    issued = await client.issue_certificate(["ari.duckdns.org"], solver, checker)
    info = await client.renewal_info(issued.fullchain_pem)
    assert info is not None
    assert issued.not_before <= info.start < info.end <= issued.not_after
    assert info.start.tzinfo is UTC
    assert info.retry_after is not None
    assert info.retry_after > datetime.now(UTC)

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await pebble.set_renewal_info(
        issued.fullchain_pem,
        {
            "suggestedWindow": {
                "start": start.isoformat().replace("+00:00", "Z"),
                "end": (start + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
            },
            "explanationURL": "https://pebble.example/why",
        },
    )
    info = await client.renewal_info(_leaf(issued))
    assert info is not None
    assert info.start == start
    assert info.end == start + timedelta(hours=2)
    assert info.explanation_url == "https://pebble.example/why"

    directory = await client.directory()
    client._transport._directory = replace(directory, renewal_info=None)
    assert await client.renewal_info(issued.fullchain_pem) is None


async def test_external_account_binding(
    pebble_eab: PebbleServer, make_client: Callable[..., AcmeClient]
) -> None:
    """EAB-required CA: no EAB fails, a wrong MAC key fails, the right one makes an account."""
    client = make_client(server=pebble_eab)
    assert (await client.directory()).external_account_required is True
    with pytest.raises(ExternalAccountRequiredError):
        await client.register_account(terms_of_service_agreed=True)

    wrong = ExternalAccountBinding("kid-1", DEFAULT_EAB_KEYS["kid-2"])
    with pytest.raises(UnauthorizedError):
        await client.register_account(terms_of_service_agreed=True, eab=wrong)

    right = ExternalAccountBinding("kid-1", DEFAULT_EAB_KEYS["kid-1"])
    account = await client.register_account(terms_of_service_agreed=True, eab=right)
    assert account.status == STATUS_VALID
    assert client.account_url == account.url


async def test_blocked_name_is_rejected(
    client: AcmeClient, solver: DuckDnsLikeSolver, checker: DnsPropagationChecker
) -> None:
    """Pebble's domain block list gives RejectedIdentifierError with the subproblem."""
    with pytest.raises(RejectedIdentifierError) as caught:
        await client.issue_certificate(["www.blocked-domain.example"], solver, checker)
    assert caught.value.status == 400
    assert [sub.identifier for sub in caught.value.subproblems] == [
        "www.blocked-domain.example"
    ]
    assert solver.history == []


async def test_propagation_timeout_clears_txt(
    pebble: PebbleServer, client: AcmeClient, checker: DnsPropagationChecker
) -> None:
    """DNS never shows the value: a quick timeout naming the record, TXT cleared afterwards."""
    hidden = DuckDnsLikeSolver(pebble, publish=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DnsPropagationTimeoutError) as caught:
        await client.issue_certificate(
            ["slow.duckdns.org"], hidden, checker, propagation_timeout=0.3
        )
    assert loop.time() - started < 5
    assert caught.value.record == "_acme-challenge.slow.duckdns.org"
    assert "_acme-challenge.slow.duckdns.org" in str(caught.value)
    assert hidden.cleared == ["slow.duckdns.org"]
    assert hidden.values == {}


class _NoWait:
    """A propagation checker that does not wait at all."""

    async def wait_for_txt(self, identifier: str, value: str, deadline: float) -> None:
        """Return at once."""


async def test_invalid_authorization_carries_challenge_error(
    pebble: PebbleServer, client: AcmeClient
) -> None:
    """The CA finds no TXT record: AuthorizationInvalidError with the CA's problem detail."""
    hidden = DuckDnsLikeSolver(pebble, publish=False)
    with pytest.raises(AuthorizationInvalidError) as caught:
        await client.issue_certificate(["invalid.duckdns.org"], hidden, _NoWait())
    assert caught.value.identifier == "invalid.duckdns.org"
    assert caught.value.status == "invalid"
    assert isinstance(caught.value.problem, UnauthorizedError)
    assert "TXT" in caught.value.problem.detail
    assert hidden.cleared == ["invalid.duckdns.org"]


class _Blocking:
    """A propagation checker that never returns."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def wait_for_txt(self, identifier: str, value: str, deadline: float) -> None:
        """Wait forever."""
        self.entered.set()
        await asyncio.Event().wait()


async def test_cancellation_clears_txt(
    client: AcmeClient, solver: DuckDnsLikeSolver
) -> None:
    """Cancelling an issuance mid-way still clears the TXT record."""
    blocking = _Blocking()
    task = asyncio.create_task(
        client.issue_certificate(["cancel.duckdns.org"], solver, blocking)
    )
    await blocking.entered.wait()
    assert solver.values == {"cancel.duckdns.org": solver.history[0][1]}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert solver.values == {}
    assert solver.cleared == ["cancel.duckdns.org"]


async def test_preferred_chain(
    pebble: PebbleServer,
    make_client: Callable[..., AcmeClient],
    solver: DuckDnsLikeSolver,
    checker: DnsPropagationChecker,
) -> None:
    """Asking for the alternate root's name gives the alternate chain (ca_bundle path TLS)."""
    client = make_client(ssl_context=None, ca_bundle=pebble.ca_bundle_path)
    await client.register_account(terms_of_service_agreed=True)
    alternate_root = x509.load_pem_x509_certificate((await pebble.root_pem(1)).encode())
    name = alternate_root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[
        0
    ].value
    assert isinstance(name, str)
    issued = await client.issue_certificate(
        ["chain.duckdns.org"], solver, checker, preferred_chain=name
    )
    assert top_issuer_common_name(parse_pem_certificates(issued.fullchain_pem)) == name
    await _verify_chain(pebble, issued, root_index=1)


async def test_client_never_closes_the_session(
    acme_session: aiohttp.ClientSession, client: AcmeClient
) -> None:
    """The injected session is Home Assistant's: it stays open."""
    await client.find_account()
    assert not acme_session.closed
    assert isinstance(client.account_key, AccountKey)
