"""Issuing a certificate: order, prove control, finalize, download.

``AcmeClient.issue_certificate`` runs `issue_certificate`; how control is
proven (dns-persist-01, dns-01, the fallback after a refusal) is validate.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import logging
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from custom_components.secure_remote_access.protocol.names import normalize_names
from custom_components.secure_remote_access.protocol.x509.parse import (
    parse_pem_certificates,
)

from .crypto import KeyAndCsr, KeyType, ari_cert_id, generate_key_and_csr
from .dns import DEFAULT_PROPAGATION_TIMEOUT, Dns01Solver, PropagationChecker
from .errors import (
    AcmeError,
    AcmeProblemError,
    MalformedResponseError,
    OrderInvalidError,
    OrderNotReadyError,
    PersistRefusedError,
    refuses_replaces,
)
from .messages import (
    STATUS_PENDING,
    STATUS_PROCESSING,
    STATUS_READY,
    STATUS_VALID,
    IssuedCertificate,
    Order,
)
from .persist import PersistValidation
from .validate import validate_order

if TYPE_CHECKING:
    from .client import AcmeClient

_LOGGER = logging.getLogger(__name__)


async def issue_certificate(
    client: AcmeClient,
    names: Sequence[str],
    solver: Dns01Solver,
    checker: PropagationChecker,
    *,
    key_type: KeyType = KeyType.EC_P256,
    profile: str | None = None,
    replaces: str | None = None,
    preferred_chain: str | None = None,
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT,
    persist: PersistValidation | None = None,
) -> IssuedCertificate:
    """Order, prove control of the names, finalize, download.

    With ``persist``, and when the CA offers dns-persist-01 for every
    pending authorization, the persistent record is published once (only
    where it is missing) and all challenges are answered at once. Otherwise
    dns-01, strictly one challenge after the other, because DuckDNS has a
    single TXT value per domain: set it, wait until visible, tell the CA,
    wait for the authorization, then the next. Every dns-01 value set is
    cleared at the end, also after errors and cancellation. A CA that
    refuses the persistent record costs at most one more order, answered
    with dns-01 (see validate.py).
    """
    clean = normalize_names(names)
    order, replaces = await new_replacement_order(client, clean, profile, replaces)
    try:
        validation = await validate_order(
            client, order, clean, solver, checker, persist, propagation_timeout
        )
    except PersistRefusedError as refused:
        # The refused authorizations are spent: one more order, dns-01 only.
        order, replaces = await new_replacement_order(client, clean, profile, replaces)
        validation = (
            await validate_order(
                client, order, clean, solver, checker, None, propagation_timeout
            )
        )._replace(note=refused.refusal.note, detail=refused.refusal.describe())
    key_pem = ""
    ours: bytes | None = None  # a key the certificate must have (see below)
    if order.status in (STATUS_PENDING, STATUS_READY):
        # Every authorization is valid now, so the order is ready: finalize
        # at once instead of fetching the order first (one request less).
        fresh = await _fresh_key(client, key_type, clean)
        key_pem = fresh.private_key_pem
        try:
            order = await client.finalize_order(order, fresh.csr_der)
        except OrderNotReadyError as err:  # the CA is still catching up
            _LOGGER.debug("finalize refused (%s): polling the order", err)
            order, taken = await _finalize_when_ready(client, order, fresh, err)
            ours = fresh.public_key_der if taken else None
        except AcmeProblemError as err:
            if err.status is None or err.status < 500:
                raise  # the CA's own answer (badCSR, rateLimited, ...): as it is
            # A server error may come after the CA took our CSR: the order decides.
            _LOGGER.debug("finalize failed (%s): polling the order", err)
            order, taken = await _finalize_when_ready(client, order, fresh, err)
            ours = fresh.public_key_der if taken else None
    else:
        order = await client.wait_for_order(
            order.url, frozenset({STATUS_READY, STATUS_PROCESSING, STATUS_VALID})
        )
        if order.status == STATUS_READY:
            fresh = await _fresh_key(client, key_type, clean)
            order = await client.finalize_order(order, fresh.csr_der)
            key_pem = fresh.private_key_pem
    if order.status != STATUS_VALID:
        order = await client.wait_for_order(order.url, frozenset({STATUS_VALID}))
    if not key_pem:
        raise AcmeError(
            f"order {order.url} was finalized elsewhere; its key is unknown"
        )
    if order.certificate is None:
        raise MalformedResponseError("valid order has no certificate URL")
    chain_pem = await client.download_certificate(
        order.certificate, preferred_chain=preferred_chain
    )
    leaf = parse_pem_certificates(chain_pem)[0]
    if ours is not None and _spki(leaf) != ours:
        raise AcmeError(
            f"order {order.url} was finalized elsewhere; its key is unknown"
        )
    return IssuedCertificate(
        fullchain_pem=chain_pem,
        private_key_pem=key_pem,
        serial_hex=format(leaf.serial_number, "x"),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        names=clean,
        ari_cert_id=ari_cert_id(leaf),
        profile=order.profile,
        account_url=client.account_url or "",
        certificate_url=order.certificate,
        replaced=replaces,
        validation_method=validation.method,
        validation_note=validation.note,
        validation_detail=validation.detail,
    )


async def _fresh_key(
    client: AcmeClient, key_type: KeyType, names: Sequence[str]
) -> KeyAndCsr:
    """A new certificate key and CSR, made in the executor."""
    loop = asyncio.get_running_loop()
    fresh = await loop.run_in_executor(None, generate_key_and_csr, key_type, names)
    account_der = client.account_key.public_key.public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    if fresh.public_key_der == account_der:  # pragma: no cover - defensive
        raise AcmeError("the certificate key must not be the account key")
    return fresh


async def _finalize_when_ready(
    client: AcmeClient, order: Order, fresh: KeyAndCsr, refusal: AcmeProblemError
) -> tuple[Order, bool]:
    """Poll the order after a refused finalize; finalize once more if it is ready.

    Returns the order and whether the CA had taken a CSR before:
    ``processing`` or ``valid`` (whose key is checked against ours after
    the download). An order that went invalid reports the CA's refusal,
    not the bare status.
    """
    try:
        order = await client.wait_for_order(
            order.url, frozenset({STATUS_READY, STATUS_PROCESSING, STATUS_VALID})
        )
    except OrderInvalidError as err:
        raise (err if err.problem is not None else refusal) from refusal
    if order.status != STATUS_READY:
        return order, True
    return await client.finalize_order(order, fresh.csr_der), False


async def new_replacement_order(
    client: AcmeClient,
    names: tuple[str, ...],
    profile: str | None,
    replaces: str | None,
) -> tuple[Order, str | None]:
    """Order with ``replaces``; when the CA refuses that, order once without.

    ``replaces`` is a hint: Boulder refuses it for another account's or
    another CA's certificate (403, 404) or one already replaced (409);
    Pebble answers 500 when it cannot find the replaced certificate.
    Returns the order and the ``replaces`` value it was accepted with.
    """
    try:
        return await client.new_order(
            names, profile=profile, replaces=replaces
        ), replaces
    except AcmeProblemError as err:
        if replaces is None or not refuses_replaces(err):
            raise
        _LOGGER.info(
            "The CA refused the order as a replacement (%s); ordering without it",
            err,
        )
    return await client.new_order(names, profile=profile), None


def _spki(certificate: x509.Certificate) -> bytes:
    """A certificate's public key as DER SubjectPublicKeyInfo."""
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
