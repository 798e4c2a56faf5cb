"""Finalize without fetching the order first: what a refused or failed finalize leads to.

The CA's own refusal reaches the user as it is and is never sent twice; a
server error after the CA took our CSR keeps our key for the certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest.mock import patch

from cryptography.hazmat.primitives import serialization
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AcmeClient,
    AcmeError,
    BadCsrError,
    RateLimitedError,
    UnauthorizedError,
    issue,
)
from custom_components.secure_remote_access.protocol.acme.crypto import (
    KeyAndCsr,
    KeyType,
    build_csr,
    generate_private_key,
    private_key_pem,
)
from tests.fakes import certs

from .scripted import (
    NAME,
    RecordingSolver,
    Reply,
    ScriptedAcme,
    Visible,
    authz,
    cert_reply,
    new_order_reply,
    order,
)

ERROR = "urn:ietf:params:acme:error:"


def _problem(status: int, kind: str, detail: str) -> Reply:
    return Reply(status=status, json={"type": ERROR + kind, "detail": detail})


def _script(ca: ScriptedAcme, finalize: Reply, *orders: dict[str, Any]) -> None:
    ca.on("new-order", new_order_reply(ca))
    ca.on("authz/1", Reply(json=authz(ca, "valid")))
    ca.on("order/1/finalize", finalize)
    ca.on("order/1", *(Reply(json=item) for item in orders))


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (_problem(400, "badCSR", "key too weak for policy"), BadCsrError),
        (_problem(429, "rateLimited", "too many certificates"), RateLimitedError),
        (_problem(403, "unauthorized", "account deactivated"), UnauthorizedError),
    ],
)
async def test_the_cas_refusal_is_raised_as_it_is_and_not_repeated(
    ca: ScriptedAcme,
    make: Callable[..., AcmeClient],
    reply: Reply,
    error: type[AcmeError],
) -> None:
    """badCSR, rateLimited, unauthorized: one finalize, the CA's own reason."""
    _script(ca, reply, order(ca, "invalid"))
    with pytest.raises(error):
        await make().issue_certificate([NAME], RecordingSolver(), Visible())
    assert len(ca.posted("order/1/finalize")) == 1
    assert ca.posted("order/1") == []


async def test_server_error_then_invalid_order_keeps_the_reason(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A 500 and an order that went invalid without a detail: the 500's reason."""
    _script(
        ca, _problem(500, "serverInternal", "database timeout"), order(ca, "invalid")
    )
    with pytest.raises(AcmeError, match="database timeout"):
        await make().issue_certificate([NAME], RecordingSolver(), Visible())


def _known_key() -> tuple[KeyAndCsr, bytes]:
    key = generate_private_key(KeyType.EC_P256)
    fresh = KeyAndCsr(
        private_key_pem(key),
        build_csr(key, [NAME]),
        key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        ),
    )
    now = certs.now_utc()
    _leaf, chain = certs.shared_pki().intermediate.issue_for_public_key(
        [NAME],
        key.public_key(),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=90),
    )
    return fresh, chain


@pytest.mark.parametrize("status", ["valid", "processing"])
async def test_server_error_after_the_ca_took_our_csr_keeps_our_key(
    ca: ScriptedAcme, make: Callable[..., AcmeClient], status: str
) -> None:
    """The CA answered 500 but issued: the certificate comes with our key."""
    fresh, chain = _known_key()
    valid = order(ca, "valid", certificate=ca.url("cert/1"))
    orders = [valid] if status == "valid" else [order(ca, "processing"), valid]
    _script(ca, _problem(500, "serverInternal", "database timeout"), *orders)
    ca.on("cert/1", cert_reply(chain))
    client = make()
    with patch.object(issue, "_fresh_key", return_value=fresh):
        issued = await client.issue_certificate([NAME], RecordingSolver(), Visible())
    assert issued.private_key_pem == fresh.private_key_pem
    assert len(ca.posted("order/1/finalize")) == 1


async def test_a_certificate_for_another_key_is_refused(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """After a 500 the order holds a certificate for a key that is not ours."""
    _script(
        ca,
        _problem(500, "serverInternal", "database timeout"),
        order(ca, "valid", certificate=ca.url("cert/1")),
    )
    ca.on("cert/1", cert_reply(certs.issue([NAME]).fullchain_pem))
    with pytest.raises(AcmeError, match="finalized elsewhere"):
        await make().issue_certificate([NAME], RecordingSolver(), Visible())
