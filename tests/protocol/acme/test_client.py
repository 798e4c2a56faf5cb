"""Client and transport behaviour a real CA rarely shows, against a scripted local CA.

Pebble covers the happy paths; here a small aiohttp server on 127.0.0.1 answers
each URL from a script: odd order states, malformed replies, HTTP errors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
import logging
from typing import Any

from cryptography import x509
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AcmeClient,
    AcmeError,
    AcmeProblemError,
    AuthorizationInvalidError,
    MalformedResponseError,
    NoDns01ChallengeError,
    OrderInvalidError,
    PollTimeoutError,
    RejectedIdentifierError,
    ServiceUnavailableError,
    ari_cert_id,
    dns01_txt_value,
    normalize_names,
)
from custom_components.secure_remote_access.protocol.acme.crypto import (
    top_issuer_common_name,
)
from custom_components.secure_remote_access.protocol.acme.errors import refuses_replaces
from custom_components.secure_remote_access.protocol.acme.jws import b64url_decode
from custom_components.secure_remote_access.protocol.x509.parse import (
    parse_pem_certificates,
)
from tests.fakes import certs

from .scripted import (
    NAME,
    PEM_CHAIN,
    RecordingSolver,
    Reply,
    ScriptedAcme,
    Visible,
    authz,
    cert_reply,
    dns01,
    new_order_reply,
    order,
)

# ------------------------------------------------------------------ issuance


async def test_finalize_answering_valid_at_once(
    ca: ScriptedAcme,
    make: Callable[..., AcmeClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A finalize reply that is already valid is used as is; a failing TXT clear is only logged."""
    leaf = certs.issue([NAME])
    ca.on("new-order", new_order_reply(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", dns01(ca))),
        Reply(json=authz(ca, "valid", dns01(ca, "valid"))),
    )
    ca.on("chall/1", Reply(json=dns01(ca, "processing")))
    ca.on("order/1", Reply(json=order(ca, "ready")))
    ca.on(
        "order/1/finalize",
        Reply(json=order(ca, "valid", certificate=ca.url("cert/1"), profile="classic")),
    )
    ca.on("cert/1", cert_reply(leaf.fullchain_pem))
    solver = RecordingSolver(fail_clear=True)
    client = make()

    with caplog.at_level(logging.DEBUG):
        issued = await client.issue_certificate([NAME], solver, Visible())

    assert issued.fullchain_pem == leaf.fullchain_pem.decode()
    assert issued.serial_hex == format(leaf.certificate.serial_number, "x")
    assert issued.names == (NAME,)
    assert issued.profile == "classic"
    assert issued.certificate_url == ca.url("cert/1")
    assert issued.account_url == ca.url("acct/1")
    assert issued.ari_cert_id is not None
    assert solver.cleared == [NAME]
    # One warning line; the traceback only at debug level.
    # (asyncio's own "Executing ... took 0.1 seconds" on a busy machine aside)
    (warning,) = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("custom_components")
    ]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "Could not clear the TXT record of myhome.duckdns.org: DuckDNS unreachable"
    )
    assert warning.exc_info is None
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
    # One finalize, and no fetch of the order: not before (every authorization
    # is valid, so it is ready), not after (the finalize answer is valid).
    assert len(ca.posted("order/1/finalize")) == 1
    assert ca.posted("order/1") == []
    csr = x509.load_der_x509_csr(
        b64url_decode(ca.posted("order/1/finalize")[0].payload["csr"])
    )
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [NAME]


async def test_order_finalized_elsewhere_is_refused(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """An order that is already valid has a certificate whose key we do not hold."""
    ca.on("new-order", new_order_reply(ca, "valid"))
    ca.on("authz/1", Reply(json=authz(ca, "valid", dns01(ca, "valid"))))
    ca.on("order/1", Reply(json=order(ca, "valid", certificate=ca.url("cert/1"))))
    solver = RecordingSolver()
    with pytest.raises(AcmeError, match="finalized elsewhere"):
        await make().issue_certificate([NAME], solver, Visible())
    assert ca.posted("order/1/finalize") == []
    assert ca.posted("cert/1") == []
    assert solver.history == []


async def test_valid_order_without_certificate_url(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A valid order must name its certificate."""
    ca.on("new-order", new_order_reply(ca, "ready"))
    ca.on("authz/1", Reply(json=authz(ca, "valid")))
    ca.on("order/1", Reply(json=order(ca, "ready")))
    ca.on("order/1/finalize", Reply(json=order(ca, "valid")))
    with pytest.raises(MalformedResponseError, match="no certificate URL"):
        await make().issue_certificate([NAME], RecordingSolver(), Visible())


async def test_challenge_already_processing_is_not_answered_again(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A challenge the CA already works on is not POSTed again; the client just waits."""
    ca.on("new-order", new_order_reply(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", dns01(ca, "processing"))),
        Reply(json=authz(ca, "pending", dns01(ca, "processing"))),
        Reply(json=authz(ca, "valid", dns01(ca, "valid"))),
    )
    ca.on(
        "order/1",
        Reply(json=order(ca, "ready")),
        Reply(json=order(ca, "valid", certificate=ca.url("cert/1"))),
    )
    ca.on("order/1/finalize", Reply(json=order(ca, "processing")))
    ca.on("cert/1", cert_reply(certs.issue([NAME]).fullchain_pem))
    solver = RecordingSolver()
    checker = Visible()
    client = make()
    issued = await client.issue_certificate([NAME], solver, checker)
    assert issued.names == (NAME,)
    assert ca.posted("chall/1") == []
    assert len(ca.posted("authz/1")) == 3
    assert solver.history == [
        (NAME, dns01_txt_value("tok", client.account_key.thumbprint))
    ]
    assert checker.waited == solver.history
    assert solver.cleared == [NAME]


@pytest.mark.parametrize("status", ["invalid", "deactivated", "expired"])
async def test_unusable_authorization_fails_before_publishing(
    ca: ScriptedAcme, make: Callable[..., AcmeClient], status: str
) -> None:
    """An authorization that is neither pending nor valid fails without touching DNS."""
    failed = {
        **dns01(ca, "invalid"),
        "error": {
            "type": "urn:ietf:params:acme:error:dns",
            "detail": "DNS problem: NXDOMAIN",
        },
    }
    ca.on("new-order", new_order_reply(ca))
    ca.on("authz/1", Reply(json=authz(ca, status, failed)))
    solver = RecordingSolver()
    with pytest.raises(AuthorizationInvalidError) as caught:
        await make().issue_certificate([NAME], solver, Visible())
    assert caught.value.identifier == NAME
    assert caught.value.status == status
    assert caught.value.problem is not None
    assert caught.value.problem.short_type == "dns"
    assert "NXDOMAIN" in str(caught.value)
    assert solver.history == []
    assert solver.cleared == []


@pytest.mark.parametrize(
    "challenges",
    [
        [{"type": "http-01", "url": "http-chall", "status": "pending", "token": "t"}],
        [{"type": "dns-01", "url": "dns-chall", "status": "pending"}],  # no token
    ],
)
async def test_no_usable_dns01_challenge(
    ca: ScriptedAcme,
    make: Callable[..., AcmeClient],
    challenges: list[dict[str, Any]],
) -> None:
    """Without a dns-01 challenge carrying a token there is nothing to publish."""
    ca.on("new-order", new_order_reply(ca))
    ca.on("authz/1", Reply(json=authz(ca, "pending", *challenges)))
    solver = RecordingSolver()
    with pytest.raises(NoDns01ChallengeError) as caught:
        await make().issue_certificate([NAME], solver, Visible())
    assert caught.value.identifier == NAME
    assert NAME in str(caught.value)
    assert solver.history == []


async def test_finalize_refused_as_not_ready_then_retried(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """orderNotReady on the first finalize: the order is polled, then finalized again."""
    leaf = certs.issue([NAME])
    ca.on("new-order", new_order_reply(ca))
    ca.on("authz/1", Reply(json=authz(ca, "valid")))
    ca.on(
        "order/1/finalize",
        Reply(
            status=403,
            json={
                "type": "urn:ietf:params:acme:error:orderNotReady",
                "detail": "order is pending",
            },
        ),
        Reply(json=order(ca, "valid", certificate=ca.url("cert/1"))),
    )
    ca.on("order/1", Reply(json=order(ca, "ready")))
    ca.on("cert/1", cert_reply(leaf.fullchain_pem))

    issued = await make().issue_certificate([NAME], RecordingSolver(), Visible())

    assert issued.serial_hex == format(leaf.certificate.serial_number, "x")
    finalizes = ca.posted("order/1/finalize")
    assert len(finalizes) == 2
    assert len(ca.posted("order/1")) == 1
    # The same key's CSR both times: the key returned is the one certified.
    assert finalizes[0].payload == finalizes[1].payload


async def test_order_turning_invalid(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """An order that becomes invalid raises OrderInvalidError with the order's problem."""
    ca.on("new-order", new_order_reply(ca))
    ca.on("authz/1", Reply(json=authz(ca, "valid")))
    problem = {
        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        "detail": "policy forbids issuing for this name",
    }
    ca.on("order/1", Reply(json=order(ca, "invalid", error=problem)))
    # Boulder refuses to finalize an invalid order with orderNotReady.
    ca.on(
        "order/1/finalize",
        Reply(
            status=403,
            json={
                "type": "urn:ietf:params:acme:error:orderNotReady",
                "detail": 'Order\'s status ("invalid") is not acceptable for finalization',
            },
        ),
    )
    with pytest.raises(OrderInvalidError) as caught:
        await make().issue_certificate([NAME], RecordingSolver(), Visible())
    assert caught.value.url == ca.url("order/1")
    assert isinstance(caught.value.problem, RejectedIdentifierError)
    assert "policy forbids" in str(caught.value)

    client = make()
    ca.on("order/2", Reply(json=order(ca, "invalid")))
    with pytest.raises(OrderInvalidError, match="no error detail") as bare:
        await client.wait_for_order(ca.url("order/2"), frozenset({"valid"}))
    assert bare.value.problem is None


async def test_polling_gives_up_at_the_poll_timeout(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """An authorization stuck in pending ends in PollTimeoutError, not an endless loop."""
    ca.on("authz/1", Reply(json=authz(ca, "pending", dns01(ca))))
    client = make(poll_interval=0.05, poll_timeout=0.5)
    with pytest.raises(PollTimeoutError, match="still pending"):
        await client.wait_for_authorization(ca.url("authz/1"))
    assert 2 <= len(ca.posted("authz/1")) <= 11


async def test_order_is_fetched_with_post_as_get(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """get_order signs an empty payload with the account URL as kid."""
    ca.on("order/1", Reply(json=order(ca, "ready")))
    fetched = await make().get_order(ca.url("order/1"))
    assert fetched.status == "ready"
    assert fetched.url == ca.url("order/1")
    (request,) = ca.posted("order/1")
    assert request.payload is None
    assert request.header is not None
    assert request.header["kid"] == ca.url("acct/1")
    assert "jwk" not in request.header


async def test_account_is_looked_up_before_the_first_order(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Without a known account URL, the key's account is found first and used as kid."""
    ca.on(
        "new-acct",
        Reply(json={"status": "valid"}, headers={"Location": ca.url("acct/7")}),
    )
    ca.on("new-order", new_order_reply(ca))
    client = make(account_url=None)
    assert client.account_url is None
    created = await client.new_order(["MyHome.DuckDNS.org.", NAME])
    assert created.url == ca.url("order/1")
    assert client.account_url == ca.url("acct/7")
    posts = [r for r in ca.requests if r.method == "POST"]
    assert [r.path for r in posts] == ["new-acct", "new-order"]
    assert posts[0].payload == {"onlyReturnExisting": True}
    assert posts[0].header is not None
    assert "jwk" in posts[0].header
    assert posts[1].header is not None
    assert posts[1].header["kid"] == ca.url("acct/7")
    assert posts[1].payload == {"identifiers": [{"type": "dns", "value": NAME}]}


async def test_replies_without_location(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """newOrder and newAccount must say where the new object lives."""
    ca.on("new-order", Reply(201, json=order(ca, "pending")))
    with pytest.raises(MalformedResponseError, match="newOrder returned no Location"):
        await make().new_order([NAME])
    ca.on("new-acct", Reply(json={"status": "valid"}))
    client = make(account_url=None)
    with pytest.raises(MalformedResponseError, match="newAccount returned no Location"):
        await client.find_account()
    assert client.account_url is None


def test_names_are_normalized() -> None:
    """Names are trimmed, lower-cased and de-duplicated; empty input is refused."""
    assert normalize_names([" A.example. ", "a.example", "*.A.example"]) == (
        "a.example",
        "*.a.example",
    )
    with pytest.raises(ValueError, match="empty name"):
        normalize_names(["a.example", " . "])
    with pytest.raises(ValueError, match="at least one name"):
        normalize_names([])


async def test_empty_name_list_orders_nothing(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """An issuance without names fails before anything is sent."""
    with pytest.raises(ValueError):
        await make().issue_certificate([], RecordingSolver(), Visible())
    assert ca.requests == []


# ------------------------------------------------------------ certificates


def _chain_root(pem: str) -> str | None:
    return top_issuer_common_name(parse_pem_certificates(pem))


async def test_preferred_chain_not_offered_falls_back_to_default(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Every alternate is tried; without a match the default chain is returned."""
    default = certs.issue([NAME]).fullchain_pem
    alternate = certs.other_pki().intermediate.issue([NAME]).fullchain_pem
    link = f'<{ca.url("cert/1/alt")}>;rel="alternate"'
    ca.on("cert/1", cert_reply(default, Link=link))
    ca.on("cert/1/alt", cert_reply(alternate))
    client = make()

    chosen = await client.download_certificate(
        ca.url("cert/1"), preferred_chain="ISRG Root X2"
    )
    assert chosen == default.decode()
    assert len(ca.posted("cert/1/alt")) == 1

    chosen = await client.download_certificate(
        ca.url("cert/1"), preferred_chain=" sra other root ca "
    )
    assert _chain_root(chosen) == "SRA Other Root CA"

    chosen = await client.download_certificate(
        ca.url("cert/1"), preferred_chain="SRA Test Root CA"
    )
    assert chosen == default.decode()
    assert len(ca.posted("cert/1/alt")) == 2  # the default matched: no detour


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(json={"certificate": "not here"}, content_type="application/json"),
            "content type application/json",
        ),
        (Reply(body=b"-----BEGIN CERTIFICATE-----\n", content_type=PEM_CHAIN), "PEM"),
        (Reply(body=b"", content_type="application/x-pem-file"), "PEM"),
    ],
)
async def test_certificate_download_must_be_a_pem_chain(
    ca: ScriptedAcme, make: Callable[..., AcmeClient], reply: Reply, message: str
) -> None:
    """Another media type or a body that is no PEM chain is malformed."""
    ca.on("cert/1", reply)
    with pytest.raises(MalformedResponseError, match=message):
        await make().download_certificate(ca.url("cert/1"))


# -------------------------------------------------------------- transport


async def test_directory_unavailable(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A 503 maintenance page is ServiceUnavailableError with the Retry-After time."""
    ca.on(
        "dir",
        Reply(
            503,
            body=b"<html>maintenance</html>",
            content_type="text/html",
            headers={"Retry-After": "Sun, 01 Nov 2026 12:30:00 -0000"},
        ),
    )
    with pytest.raises(ServiceUnavailableError) as caught:
        await make().directory()
    assert caught.value.status == 503
    assert "maintenance" in caught.value.detail
    assert caught.value.retry_after == datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    assert caught.value.retry_after.tzinfo is UTC


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(body=b"<html>hello</html>", content_type="text/html"),
            "did not return JSON",
        ),
        (Reply(json=["newNonce"]), "did not return a JSON object"),
        (Reply(json={"newNonce": "x"}), "no valid 'newAccount'"),
    ],
)
async def test_directory_that_is_no_directory(
    ca: ScriptedAcme, make: Callable[..., AcmeClient], reply: Reply, message: str
) -> None:
    """A directory URL that answers something else is malformed, and not cached."""
    ca.on("dir", reply)
    client = make()
    with pytest.raises(MalformedResponseError, match=message):
        await client.directory()
    del ca.script["dir"]
    assert (await client.directory()).new_order == ca.url("new-order")


async def test_nonce_endpoint_failures(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """newNonce answering an error, or no usable Replay-Nonce, stops the POST."""
    ca.on("nonce", Reply(500, body=b"", nonce=False))
    with pytest.raises(AcmeProblemError) as caught:
        await make().get_order(ca.url("order/1"))
    assert caught.value.status == 500
    assert caught.value.detail == "HTTP 500"

    ca.on("nonce", Reply(nonce=False))
    with pytest.raises(MalformedResponseError, match="no Replay-Nonce"):
        await make().get_order(ca.url("order/1"))

    ca.on("nonce", Reply(nonce=False, headers={"Replay-Nonce": "not a nonce!"}))
    with pytest.raises(MalformedResponseError, match="no Replay-Nonce"):
        await make().get_order(ca.url("order/1"))
    assert ca.posted("order/1") == []


async def test_renewal_info_http_error(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """An ARI lookup answered with a problem document raises it, typed."""
    leaf = certs.issue([NAME])
    cert_id = ari_cert_id(leaf.certificate)
    assert cert_id is not None
    ca.on(
        f"ari/{cert_id}",
        Reply(
            404,
            json={"type": "urn:ietf:params:acme:error:malformed", "detail": "unknown"},
            content_type="application/problem+json",
        ),
    )
    with pytest.raises(AcmeProblemError) as caught:
        await make().renewal_info(leaf.certificate)
    assert caught.value.status == 404
    assert caught.value.short_type == "malformed"
    assert [r.path for r in ca.requests] == ["dir", f"ari/{cert_id}"]


async def test_alternate_chains_are_followed_a_few_times_only(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A certificate answer with endless alternates costs at most three requests."""
    default = certs.issue([NAME]).fullchain_pem
    links = ", ".join(f'<{ca.url(f"alt/{i}")}>;rel="alternate"' for i in range(20))
    ca.on("cert/1", cert_reply(default, Link=links))
    for i in range(20):
        ca.on(f"alt/{i}", cert_reply(default))
    chosen = await make().download_certificate(
        ca.url("cert/1"), preferred_chain="No Such Root"
    )
    assert chosen == default.decode()
    assert sum(1 for r in ca.requests if r.path.startswith("alt/")) == 3


async def test_oversized_response_is_refused(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A body beyond 1 MiB is not ACME: refused before it fills memory."""
    ca.on("cert/1", cert_reply(b"-" * (1024 * 1024 + 1)))
    with pytest.raises(MalformedResponseError, match="more than"):
        await make().download_certificate(ca.url("cert/1"))


def _problem(status: int, kind: str, detail: str = "") -> Reply:
    return Reply(
        status,
        json={"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail},
        content_type="application/problem+json",
    )


@pytest.mark.parametrize(
    ("refusal", "retried"),
    [
        (
            _problem(
                403,
                "unauthorized",
                "requester account did not request the certificate being replaced",
            ),
            True,
        ),
        (_problem(404, "malformed", "unknown serial"), True),
        (_problem(409, "alreadyReplaced", "already replaced"), True),
        (_problem(429, "rateLimited", "too many"), False),
        (_problem(500, "serverInternal", "no order for that certificate"), True),
        (_problem(503, "serverInternal", "busy"), False),
        (_problem(502, "serverInternal", "bad gateway"), False),
        # A lost account is not about replaces (healed by the caller instead).
        (_problem(400, "accountDoesNotExist", "Account 1 not found."), False),
        (_problem(403, "unauthorized", "Account has been deactivated"), False),
    ],
)
async def test_replaces_is_a_hint(
    ca: ScriptedAcme,
    make: Callable[..., AcmeClient],
    refusal: Reply,
    retried: bool,
) -> None:
    """A refusal about ``replaces`` is retried once without it; rate limits and outages not."""
    ca.on("new-order", refusal, _problem(400, "malformed", "second order"))
    with pytest.raises(AcmeProblemError) as err:
        await make().issue_certificate(
            [NAME], RecordingSolver(), Visible(), replaces="a.b"
        )
    orders = ca.posted("new-order")
    assert [o.payload.get("replaces") for o in orders] == (
        ["a.b", None] if retried else ["a.b"]
    )
    assert err.value.detail == ("second order" if retried else refusal.json["detail"])


def test_refuses_replaces_classification() -> None:
    """Errors raised by the client itself (no HTTP status) are never about replaces."""
    assert not refuses_replaces(AcmeProblemError("about:blank", "x"))
    assert refuses_replaces(AcmeProblemError("about:blank", "x", status=404))
