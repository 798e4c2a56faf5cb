"""Against a scripted CA: the refusal fallback, retried challenges, lost accounts.

Real CAs show these too (Pebble through a front in tests/test_persist_fallback.py,
Caddy's acme_server in tests/test_caddy.py); here each variant is pinned
down request by request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AccountDoesNotExistError,
    AcmeClient,
    AcmeProblemError,
    AuthorizationInvalidError,
    PersistRefusal,
    PersistValidation,
    UnauthorizedError,
    account_gone,
    client as client_module,
)
from tests.fakes import certs

from .scripted import (
    NAME,
    RecordingSolver,
    Reply,
    ScriptedAcme,
    Visible,
    Zones,
    authz,
    cert_reply,
    dns01,
    new_order_reply,
    order,
)

ISSUER = "ca.example"
REFUSED = {
    "type": "urn:ietf:params:acme:error:unauthorized",
    "detail": "No valid TXT record found for DNS-PERSIST-01 challenge",
}
DNS_PROBLEM = {
    "type": "urn:ietf:params:acme:error:dns",
    "detail": "There was a problem with a DNS query during identifier validation",
}


def _persist(ca: ScriptedAcme, status: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "type": "dns-persist-01",
        "url": ca.url("chall/2"),
        "status": status,
        "issuer-domain-names": [ISSUER],
        **extra,
    }


def _finalize(ca: ScriptedAcme) -> None:
    ca.on("order/1", Reply(json=order(ca, "ready")))
    ca.on(
        "order/1/finalize",
        Reply(json=order(ca, "valid", certificate=ca.url("cert/1"))),
    )
    ca.on("cert/1", cert_reply(certs.issue([NAME]).fullchain_pem))


class Remembered:
    """Where the glue keeps refusals (a store in Home Assistant)."""

    def __init__(self) -> None:
        self.refusals: list[PersistRefusal] = []

    async def remember(self, refusal: PersistRefusal) -> None:
        """Keep it."""
        self.refusals.append(refusal)


def _validation(
    zones: Zones, memory: Remembered, refusal: PersistRefusal | None = None
) -> PersistValidation:
    return PersistValidation(zones, zones, refusal=refusal, on_refused=memory.remember)


async def test_refused_record_costs_one_more_order_answered_with_dns01(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Invalid after dns-persist-01: remembered, then a new order with dns-01."""
    ca.on("new-order", new_order_reply(ca), new_order_reply(ca))
    pending = authz(ca, "pending", dns01(ca), _persist(ca))
    refused = authz(ca, "invalid", dns01(ca), _persist(ca, "invalid", error=REFUSED))
    ca.on(
        "authz/1",
        Reply(json=pending),  # the first order's authorization
        Reply(json=refused),  # polled after the dns-persist-01 answer
        Reply(json=refused),  # looked at again: spent
        Reply(json=pending),  # the second order's
        Reply(json=authz(ca, "valid", dns01(ca, "valid"))),
    )
    ca.on("chall/1", Reply(json=dns01(ca, "processing")))
    ca.on("chall/2", Reply(json=_persist(ca, "processing")))
    _finalize(ca)
    zones, memory, solver = Zones({}), Remembered(), RecordingSolver()
    issued = await make().issue_certificate(
        [NAME], solver, Visible(), persist=_validation(zones, memory)
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "persist_refused"
    assert issued.validation_detail == (
        "dns-persist-01 refused by the CA: No valid TXT record found for "
        "DNS-PERSIST-01 challenge (unauthorized); used dns-01"
    )
    assert len(ca.posted("new-order")) == 2  # one extra order, never more
    assert len(ca.posted("chall/2")) == 1
    assert len(ca.posted("chall/1")) == 1
    (refusal,) = memory.refusals
    assert refusal.account_url == ca.url("acct/1")
    assert refusal.problem_type == "unauthorized"
    assert [identifier for identifier, _ in solver.history] == [NAME]


async def test_refused_again_on_the_second_order_is_no_loop(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """The second order fails too (dns-01 refused): the CA's reason, no third order."""
    ca.on("new-order", new_order_reply(ca))
    pending = authz(ca, "pending", dns01(ca), _persist(ca))
    refused = authz(ca, "invalid", dns01(ca), _persist(ca, "invalid", error=REFUSED))
    dns_refused = authz(
        ca,
        "invalid",
        {**dns01(ca, "invalid"), "error": {**REFUSED, "detail": "Incorrect TXT"}},
    )
    ca.on(
        "authz/1",
        Reply(json=pending),
        Reply(json=refused),
        Reply(json=refused),
        Reply(json=pending),
        Reply(json=dns_refused),
    )
    ca.on("chall/1", Reply(json=dns01(ca, "processing")))
    ca.on("chall/2", Reply(json=_persist(ca, "processing")))
    memory = Remembered()
    with pytest.raises(AuthorizationInvalidError, match="Incorrect TXT"):
        await make().issue_certificate(
            [NAME], RecordingSolver(), Visible(), persist=_validation(Zones({}), memory)
        )
    assert len(ca.posted("new-order")) == 2
    assert len(memory.refusals) == 1


async def test_refusal_while_still_pending_uses_dns01_on_the_same_order(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A CA that keeps the challenge pending with its error (smallstep's way):
    retried, then answered with dns-01 without a new order."""
    ca.on("new-order", new_order_reply(ca))
    failing = authz(ca, "pending", dns01(ca), _persist(ca, error=REFUSED))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", dns01(ca), _persist(ca))),
        Reply(json=failing),
        Reply(json=failing),
        Reply(json=failing),  # looked at again: still pending
        Reply(json=authz(ca, "valid", dns01(ca, "valid"))),
    )
    ca.on("chall/1", Reply(json=dns01(ca, "processing")))
    ca.on("chall/2", Reply(json=_persist(ca, error=REFUSED)))
    _finalize(ca)
    memory = Remembered()
    issued = await make(
        challenge_retries=1, challenge_retry_delay=0.01
    ).issue_certificate(
        [NAME], RecordingSolver(), Visible(), persist=_validation(Zones({}), memory)
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "persist_refused"
    assert len(ca.posted("new-order")) == 1
    assert len(ca.posted("chall/2")) == 2  # answered, then asked again once
    assert len(memory.refusals) == 1


def _refusal(
    ca: ScriptedAcme, offer: str, refused_at: datetime | None = None
) -> PersistRefusal:
    return PersistRefusal(
        ca.url("acct/1"),
        offer,
        "unauthorized",
        "No valid TXT record",
        refused_at or datetime.now(UTC),
    )


def _offer_fingerprint(ca: ScriptedAcme) -> str:
    from custom_components.secure_remote_access.protocol.acme import Challenge

    return Challenge.from_json(_persist(ca)).persist_fingerprint()


def _script_dns01_issuance(ca: ScriptedAcme, *challenges: dict[str, Any]) -> None:
    ca.on("new-order", new_order_reply(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", *challenges)),
        Reply(json=authz(ca, "valid", dns01(ca, "valid"))),
    )
    ca.on("chall/1", Reply(json=dns01(ca, "processing")))
    ca.on("chall/2", Reply(json=_persist(ca, "processing")))
    _finalize(ca)


async def test_remembered_refusal_goes_to_dns01_at_once(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Within 30 days, same account and challenge: no record look-up, dns-01."""
    _script_dns01_issuance(ca, dns01(ca), _persist(ca))
    zones = Zones({})
    refused_at = datetime.now(UTC) - timedelta(days=29)
    issued = await make().issue_certificate(
        [NAME],
        RecordingSolver(),
        Visible(),
        persist=_validation(
            zones, Remembered(), _refusal(ca, _offer_fingerprint(ca), refused_at)
        ),
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "persist_refused_earlier"
    assert issued.validation_detail is not None
    assert issued.validation_detail.startswith(
        f"dns-persist-01 refused by the CA on {refused_at:%Y-%m-%d}: "
        "No valid TXT record (unauthorized); used dns-01"
    )
    assert zones.lookups == []
    assert ca.posted("chall/2") == []


@pytest.mark.parametrize(
    ("offer", "age"),
    [
        ("another challenge", timedelta(days=1)),  # the CA's challenge changed
        (None, timedelta(days=31)),  # 30 days are over
    ],
)
async def test_refusal_is_forgotten_when_the_challenge_changes_or_in_30_days(
    ca: ScriptedAcme,
    make: Callable[..., AcmeClient],
    offer: str | None,
    age: timedelta,
) -> None:
    """dns-persist-01 is tried again."""
    _script_dns01_issuance(ca, dns01(ca), _persist(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", dns01(ca), _persist(ca))),
        Reply(json=authz(ca, "valid", _persist(ca, "valid"))),
    )
    zones = Zones({})
    refusal = _refusal(ca, offer or _offer_fingerprint(ca), datetime.now(UTC) - age)
    issued = await make().issue_certificate(
        [NAME],
        RecordingSolver(),
        Visible(),
        persist=_validation(zones, Remembered(), refusal),
    )
    assert issued.validation_method == "dns-persist-01"


def test_fingerprint_ignores_the_order_of_issuers() -> None:
    """Reordering its issuer list is no change of the CA's challenge."""
    from custom_components.secure_remote_access.protocol.acme import Challenge

    def challenge(**fields: Any) -> Challenge:
        return Challenge.from_json(
            {"type": "dns-persist-01", "url": "u", "status": "pending", **fields}
        )

    one = challenge(**{"issuer-domain-names": ["a.example", "b.example"]})
    assert (
        one.persist_fingerprint()
        == challenge(issuerDomainNames=["b.example", "a.example"]).persist_fingerprint()
    )
    assert (
        one.persist_fingerprint()
        != challenge(issuerDomainNames=["a.example"]).persist_fingerprint()
    )


async def test_hashed_account_uri_is_not_written(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """draft-02 (accountHashPrefix in the directory): dns-01, and why."""
    directory = ca._directory()
    ca.on(
        "dir",
        Reply(
            json={
                **directory.json,
                "meta": {
                    "issuerDomainNames": [ISSUER],
                    "accountHashPrefix": "https://ca.example/account-hash/",
                },
            },
            nonce=False,
        ),
    )
    _script_dns01_issuance(
        ca, dns01(ca), {**_persist(ca), "issuerDomainNames": [ISSUER]}
    )
    zones = Zones({})
    issued = await make().issue_certificate(
        [NAME], RecordingSolver(), Visible(), persist=_validation(zones, Remembered())
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "record_form_unsupported"
    assert issued.validation_detail is not None
    assert "hashed account URI" in issued.validation_detail
    assert zones.writes == []
    assert zones.lookups == []


# ------------------------------------------------- pending with an error


def _pending_with_error(ca: ScriptedAcme) -> dict[str, Any]:
    return authz(ca, "pending", {**dns01(ca), "error": DNS_PROBLEM})


async def test_challenge_pending_with_an_error_is_posted_again(
    ca: ScriptedAcme,
    make: Callable[..., AcmeClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CA's resolver saw the TXT value late: the second POST validates it."""
    waits: list[float] = []
    real_sleep = client_module.asyncio.sleep

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)
    ca.on("new-order", new_order_reply(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", dns01(ca))),
        Reply(json=_pending_with_error(ca), headers={"Retry-After": "3"}),
        Reply(json=authz(ca, "valid", dns01(ca, "valid"))),
    )
    ca.on("chall/1", Reply(json=dns01(ca)))
    _finalize(ca)
    issued = await make().issue_certificate([NAME], RecordingSolver(), Visible())
    assert issued.validation_method == "dns-01"
    assert len(ca.posted("chall/1")) == 2
    assert waits and waits[0] >= 2.0  # the CA's Retry-After, not the 1 s back-off


async def test_challenge_that_keeps_failing_ends_with_the_cas_reason(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Bounded retries, then the CA's problem type and detail, not a poll time-out."""
    ca.on("new-order", new_order_reply(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", dns01(ca))),
        Reply(json=_pending_with_error(ca)),
    )
    ca.on("chall/1", Reply(json=dns01(ca)))
    with pytest.raises(AuthorizationInvalidError) as caught:
        await make(challenge_retries=2, challenge_retry_delay=0.01).issue_certificate(
            [NAME], RecordingSolver(), Visible()
        )
    assert len(ca.posted("chall/1")) == 3  # answered, then twice again
    assert caught.value.attempts == 3
    assert caught.value.problem is not None
    assert caught.value.problem.short_type == "dns"
    assert str(caught.value) == (
        f"the CA could not validate {NAME} after 3 attempts: There was a problem "
        "with a DNS query during identifier validation (dns)"
    )


# ------------------------------------------------------------ lost accounts


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (AccountDoesNotExistError(AccountDoesNotExistError.problem_type, "x"), True),
        # Pebble, Boulder and smallstep on a deactivated account.
        (
            UnauthorizedError(
                UnauthorizedError.problem_type, "Account has been deactivated"
            ),
            True,
        ),
        (
            UnauthorizedError(
                UnauthorizedError.problem_type,
                'Account is not valid, has status "deactivated"',
            ),
            True,
        ),
        (
            UnauthorizedError(UnauthorizedError.problem_type, "account is not active"),
            True,
        ),
        (
            UnauthorizedError(
                UnauthorizedError.problem_type,
                "requester account did not request the certificate being replaced",
            ),
            False,
        ),
        (
            AcmeProblemError("urn:ietf:params:acme:error:malformed", "deactivated"),
            False,
        ),
    ],
)
def test_account_gone(error: AcmeProblemError, gone: bool) -> None:
    """Which refusals mean the account must be registered again."""
    assert account_gone(error) is gone
