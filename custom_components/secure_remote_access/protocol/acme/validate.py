"""Proving control of an order's names: dns-persist-01, else (or after a refusal) dns-01."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
import logging
from typing import TYPE_CHECKING, Final, NamedTuple

from .crypto import dns01_txt_value
from .dns import Dns01Solver, PropagationChecker
from .errors import (
    AuthorizationInvalidError,
    NoDns01ChallengeError,
    PersistRefusedError,
)
from .messages import (
    CHALLENGE_DNS01,
    CHALLENGE_DNS_PERSIST01,
    STATUS_PENDING,
    STATUS_VALID,
    Authorization,
    Order,
)
from .persist import (
    UNSUPPORTED_FORM_DETAIL,
    PersistNote,
    PersistRefusal,
    PersistValidation,
    offer_for_order,
    publish_persist_record,
)

if TYPE_CHECKING:
    from .client import AcmeClient

_LOGGER = logging.getLogger(__name__)

#: The validation method reported when every authorization was already valid.
VALIDATION_REUSED: Final = "reused_authorization"


class Validation(NamedTuple):
    """How control of an order's names was proven, and why that way."""

    method: str
    note: str | None = None
    detail: str | None = None


async def validate_order(
    client: AcmeClient,
    order: Order,
    names: tuple[str, ...],
    solver: Dns01Solver,
    checker: PropagationChecker,
    persist: PersistValidation | None,
    propagation_timeout: float,
) -> Validation:
    """Complete the order's authorizations with one method at a time.

    A dns-01 value would overwrite the persistent record in DuckDNS's one TXT
    value, so an order starts with one method for every name. When the CA
    refuses the dns-persist-01 record, the refusal is remembered and the
    names are answered with dns-01: on this order while its authorizations
    are still pending, otherwise PersistRefusedError asks for a new order.
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
        return Validation(VALIDATION_REUSED)
    loop = asyncio.get_running_loop()
    note: str | None = None
    detail: str | None = None
    if persist is not None:
        account_url = client.account_url or ""
        offer, note = offer_for_order(
            [authz.challenge(CHALLENGE_DNS_PERSIST01) for authz in pending],
            names,
            account_url,
            await client.directory(),
        )
        if offer is not None and not _placeable(persist, pending):
            offer, note = None, PersistNote.NOT_DELEGATED
        refusal = persist.refusal
        if (
            offer is not None
            and refusal is not None
            and refusal.applies(account_url, offer.fingerprint, datetime.now(UTC))
        ):
            offer, note = None, PersistNote.PERSIST_REFUSED_EARLIER
            detail = refusal.describe(earlier=True)
        if note is PersistNote.RECORD_FORM_UNSUPPORTED:
            detail = UNSUPPORTED_FORM_DETAIL
        if offer is not None:
            note = await publish_persist_record(
                persist,
                [authz.identifier.value for authz in pending],
                offer,
                loop.time() + propagation_timeout,
            )
            try:
                await _answer_persist(client, pending)
            except AuthorizationInvalidError as err:
                refusal = PersistRefusal.from_error(
                    account_url, offer.fingerprint, err, datetime.now(UTC)
                )
                pending = await _after_refusal(client, persist, pending, refusal)
                note, detail = refusal.note, refusal.describe()
            else:
                return Validation(CHALLENGE_DNS_PERSIST01, note)
        _LOGGER.info("Validating with dns-01: %s", detail or note)
    published: list[str] = []
    try:
        for authz in pending:
            await _authorize_dns01(
                client, authz, solver, checker, propagation_timeout, published
            )
    finally:
        await _clear_all(solver, published)
    return Validation(CHALLENGE_DNS01, note, detail)


async def _answer_persist(client: AcmeClient, pending: Sequence[Authorization]) -> None:
    """Answer every dns-persist-01 challenge, then wait for the authorizations."""
    for authz in pending:
        challenge = authz.challenge(CHALLENGE_DNS_PERSIST01)
        assert challenge is not None
        if challenge.status == STATUS_PENDING:
            await client.respond_to_challenge(challenge.url)
    for authz in pending:
        await client.wait_for_authorization(authz.url, CHALLENGE_DNS_PERSIST01)


async def _after_refusal(
    client: AcmeClient,
    persist: PersistValidation,
    pending: Sequence[Authorization],
    refusal: PersistRefusal,
) -> list[Authorization]:
    """Remember a refusal; the authorizations dns-01 can still answer on this order.

    Raises PersistRefusedError when the CA made one invalid (most do: a
    failed challenge fails its authorization and the order).
    """
    if not refusal.lasting:
        _LOGGER.warning(
            "The CA could not look up the dns-persist-01 record (%s): using "
            "dns-01 for this order",
            refusal.reason,
        )
    else:
        _LOGGER.warning(
            "The CA refused the dns-persist-01 record (%s): using dns-01 until "
            "%s or until the CA's dns-persist-01 challenge changes",
            refusal.reason,
            f"{refusal.retry_from:%Y-%m-%d}",
        )
        if persist.on_refused is not None:
            await persist.on_refused(refusal)
    remaining: list[Authorization] = []
    for authz in pending:
        fresh = await client.get_authorization(authz.url)
        if fresh.status == STATUS_VALID:
            continue
        if fresh.status != STATUS_PENDING:
            raise PersistRefusedError(refusal)
        remaining.append(fresh)
    return remaining


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
    await client.wait_for_authorization(authz.url, CHALLENGE_DNS01)


def _placeable(persist: PersistValidation, pending: Sequence[Authorization]) -> bool:
    """Whether the solver knows where every pending name's record lives."""
    try:
        for authz in pending:
            persist.solver.zone_of(authz.identifier.value)
    except ValueError:
        return False
    return True


async def _clear_all(solver: Dns01Solver, identifiers: Sequence[str]) -> None:
    """Clear every published TXT record; failures are logged, not raised.

    One line at warning level (a value left behind is overwritten by the next
    order); the traceback only at debug level.
    """
    for identifier in identifiers:
        try:
            await solver.clear_txt(identifier)
        except Exception as err:
            _LOGGER.warning("Could not clear the TXT record of %s: %s", identifier, err)
            _LOGGER.debug("Clearing the TXT record of %s", identifier, exc_info=True)
