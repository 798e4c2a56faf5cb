"""Proving control of an order's names: dns-persist-01 or dns-01, one method per order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import logging
from typing import TYPE_CHECKING, Final

from .crypto import dns01_txt_value
from .dns import Dns01Solver, PropagationChecker
from .errors import AuthorizationInvalidError, NoDns01ChallengeError
from .messages import (
    CHALLENGE_DNS01,
    CHALLENGE_DNS_PERSIST01,
    STATUS_PENDING,
    STATUS_VALID,
    Authorization,
    Order,
)
from .persist import (
    PersistNote,
    PersistValidation,
    publish_persist_record,
    record_for_order,
)

if TYPE_CHECKING:
    from .client import AcmeClient

_LOGGER = logging.getLogger(__name__)

#: The validation method reported when every authorization was already valid.
VALIDATION_REUSED: Final = "reused_authorization"


async def validate_order(
    client: AcmeClient,
    order: Order,
    names: tuple[str, ...],
    solver: Dns01Solver,
    checker: PropagationChecker,
    persist: PersistValidation | None,
    propagation_timeout: float,
) -> tuple[str, str | None]:
    """Complete the order's authorizations; returns the method and a note.

    One method for the whole order: a dns-01 value would overwrite the
    persistent record in DuckDNS's one TXT value.
    """
    pending: list[Authorization] = []
    for url in order.authorizations:
        authz = await client.get_authorization(url)
        if authz.status == STATUS_VALID:
            _LOGGER.debug("authorization for %s is already valid", authz.name)
        elif authz.status != STATUS_PENDING:
            raise AuthorizationInvalidError(
                authz.name, authz.status, authz.failed_challenge_error()
            )
        else:
            pending.append(authz)
    if not pending:
        return VALIDATION_REUSED, None
    loop = asyncio.get_running_loop()
    note: str | None = None
    if persist is not None:
        wanted, note = record_for_order(
            [authz.challenge(CHALLENGE_DNS_PERSIST01) for authz in pending],
            names,
            client.account_url or "",
        )
        if wanted is not None and not _placeable(persist, pending):
            wanted, note = None, PersistNote.NOT_DELEGATED
        if wanted is not None:
            note = await publish_persist_record(
                persist,
                [authz.identifier.value for authz in pending],
                wanted,
                loop.time() + propagation_timeout,
            )
            await _answer_persist(client, pending)
            return CHALLENGE_DNS_PERSIST01, note
        _LOGGER.info("Validating with dns-01: %s", note)
    published: list[str] = []
    try:
        for authz in pending:
            await _authorize_dns01(
                client, authz, solver, checker, propagation_timeout, published
            )
    finally:
        await _clear_all(solver, published)
    return CHALLENGE_DNS01, note


async def _answer_persist(client: AcmeClient, pending: Sequence[Authorization]) -> None:
    """Answer every dns-persist-01 challenge, then wait for the authorizations."""
    for authz in pending:
        challenge = authz.challenge(CHALLENGE_DNS_PERSIST01)
        assert challenge is not None
        if challenge.status == STATUS_PENDING:
            await client.respond_to_challenge(challenge.url)
    for authz in pending:
        await client.wait_for_authorization(authz.url)


async def _authorize_dns01(
    client: AcmeClient,
    authz: Authorization,
    solver: Dns01Solver,
    checker: PropagationChecker,
    propagation_timeout: float,
    published: list[str],
) -> None:
    """Complete one pending authorization through dns-01."""
    challenge = authz.challenge(CHALLENGE_DNS01)
    if challenge is None or challenge.token is None:
        raise NoDns01ChallengeError(authz.name)
    identifier = authz.identifier.value
    value = dns01_txt_value(challenge.token, client.account_key.thumbprint)
    if identifier not in published:
        published.append(identifier)
    await solver.set_txt(identifier, value)
    loop = asyncio.get_running_loop()
    await checker.wait_for_txt(identifier, value, loop.time() + propagation_timeout)
    if challenge.status == STATUS_PENDING:
        await client.respond_to_challenge(challenge.url)
    await client.wait_for_authorization(authz.url)


def _placeable(persist: PersistValidation, pending: Sequence[Authorization]) -> bool:
    """Whether the solver knows where every pending name's record lives."""
    try:
        for authz in pending:
            persist.solver.zone_of(authz.identifier.value)
    except ValueError:
        return False
    return True


async def _clear_all(solver: Dns01Solver, identifiers: Sequence[str]) -> None:
    """Clear every published TXT record; failures are logged, not raised."""
    for identifier in identifiers:
        try:
            await solver.clear_txt(identifier)
        except Exception:
            _LOGGER.exception("could not clear the TXT record of %s", identifier)
