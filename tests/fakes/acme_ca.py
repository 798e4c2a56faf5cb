"""An ACME CA stand-in that lives in simulated time, for the year of faults.

Pebble stamps certificates with the real clock; a year of renewals under
Home Assistant's time travel needs a CA whose certificates and ARI windows
follow the simulated clock. This is one: an aiohttp server on 127.0.0.1 that
speaks the part of RFC 8555 / RFC 9773 our client uses (directory, nonces,
accounts, orders with ``replaces``, dns-01 authorizations, finalize,
download, renewalInfo) and answers with Boulder's statuses and problem
types. It validates dns-01 against the DuckDNS stand-in's single TXT value.
JWS signatures are not checked (Pebble's tests prove them); nonces are.

Faults are injected through :attr:`SimulatedCa.faults`: a callable asked at
every newOrder which fault, if any, this attempt meets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import datetime as dt
from datetime import datetime, timedelta
import json
import random
from typing import Any

from aiohttp import web
from cryptography import x509
from homeassistant.util import dt as dt_util

from custom_components.secure_remote_access.protocol.acme import (
    ari_cert_id,
    dns01_txt_value,
)
from custom_components.secure_remote_access.protocol.acme.jws import (
    b64url,
    b64url_decode,
    jwk_thumbprint,
)
from tests.fakes import certs
from tests.fakes.duckdns import FakeDuckDns

ERROR = "urn:ietf:params:acme:error:"
#: Where in a certificate's lifetime its ARI window lies (fractions).
WINDOW = (0.70, 0.75)
#: Every LATE_EVERY-th certificate gets a window after its expiry.
LATE_EVERY = 4
#: Let's Encrypt: at most 5 certificates for the same set of names in 7 days.
DUPLICATE_LIMIT = 5
DUPLICATE_PERIOD = timedelta(days=7)


def simulated_now() -> datetime:
    """Home Assistant's (frozen) now as a datetime cryptography accepts."""
    return dt.datetime.fromtimestamp(dt_util.utcnow().timestamp(), dt.UTC)


@dataclass
class Issued:
    """A certificate this CA issued."""

    serial: str
    ari_id: str
    account: str
    not_before: datetime
    not_after: datetime
    replaced: bool = False
    #: The CA suggests renewing only after expiry (an ARI mistake): the
    #: client's emergency floor has to step in.
    late: bool = False

    def window(self) -> tuple[datetime, datetime]:
        """The ARI window, later than the lifetime rule (so ignoring ARI shows)."""
        lifetime = self.not_after - self.not_before
        if self.late:
            return self.not_after + lifetime / 10, self.not_after + lifetime / 5
        return (
            self.not_before + lifetime * WINDOW[0],
            self.not_before + lifetime * WINDOW[1],
        )


@dataclass
class OrderRecord:
    """An order and what happened to it."""

    id: int
    account: str
    names: list[str]
    placed: datetime
    replaces: str | None
    status: str = "pending"
    authorizations: list[int] = field(default_factory=list)
    certificate: int | None = None
    needed: bool = True


@dataclass
class AuthzRecord:
    """One dns-01 authorization."""

    id: int
    name: str
    token: str
    status: str = "pending"


@dataclass
class SimulatedCa:
    """The CA stand-in; see the module docstring."""

    duckdns: FakeDuckDns
    lifetime: timedelta
    base: str = ""
    faults: Callable[[OrderRecord], str | None] = lambda _order: None
    #: Asked at every newOrder: is the pair on disk still good and not due?
    order_needed: Callable[[], bool] = lambda: True
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    accounts: dict[str, str] = field(default_factory=dict)  # thumbprint -> id
    thumbprints: dict[str, str] = field(default_factory=dict)  # id -> thumbprint
    orders: dict[int, OrderRecord] = field(default_factory=dict)
    authzs: dict[int, AuthzRecord] = field(default_factory=dict)
    issued: dict[int, Issued] = field(default_factory=dict)
    chains: dict[int, bytes] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    #: (time, path) of every request; the CA's "not before" times it sent.
    requests: list[tuple[datetime, str]] = field(default_factory=list)
    not_before: datetime | None = None
    early_requests: list[tuple[datetime, str]] = field(default_factory=list)
    bad_nonce_rate: float = 0.0
    bad_nonces_sent: int = 0
    #: Called when an order is held at finalize (a restart in the middle of it).
    on_hold: Callable[[], None] = lambda: None
    holding: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _fault_for_order: dict[int, str | None] = field(default_factory=dict)
    issued_times: list[tuple[frozenset[str], datetime]] = field(default_factory=list)
    duplicate_refusals: int = 0
    _next: int = 0

    # --- plumbing -------------------------------------------------------------

    def _id(self) -> int:
        self._next += 1
        return self._next

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return f"{self.base}/{path}"

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/dir", self._directory)
        app.router.add_route("HEAD", "/nonce", self._nonce)
        app.router.add_get("/ari/{cert_id}", self._renewal_info)
        app.router.add_post("/{path:.*}", self._post)
        app.middlewares.append(self._record)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        now = simulated_now()
        self.requests.append((now, request.path))
        if self.not_before is not None and now < self.not_before:
            self.early_requests.append((now, request.path))
        response: web.StreamResponse = await handler(request)
        return response

    def _fresh_nonce(self) -> str:
        nonce = b64url(self.rng.randbytes(12))
        self.nonces.add(nonce)
        return nonce

    def _reply(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers={"Replay-Nonce": self._fresh_nonce(), **(headers or {})},
        )

    def problem(
        self,
        status: int,
        kind: str,
        detail: str,
        retry_after: timedelta | None = None,
    ) -> web.Response:
        """A problem document; with ``retry_after`` the CA's not-before time is set."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after.total_seconds()))
            self.not_before = simulated_now() + retry_after
        response = self._reply(
            status, {"type": ERROR + kind, "detail": detail}, headers
        )
        response.content_type = "application/problem+json"
        return response

    def issued_for(self, names: list[str], now: datetime) -> list[datetime]:
        """When certificates for exactly ``names`` were issued in the last 7 days."""
        wanted = frozenset(names)
        return [
            at
            for issued_names, at in self.issued_times
            if issued_names == wanted and now - at < DUPLICATE_PERIOD
        ]

    def max_issued_in_a_period(self) -> int:
        """The most certificates issued within any 7 days (the duplicate limit's count)."""
        times = sorted(at for _, at in self.issued_times)
        return max(
            (
                sum(
                    1
                    for other in times
                    if timedelta(0) <= other - at < DUPLICATE_PERIOD
                )
                for at in times
            ),
            default=0,
        )

    # --- unauthenticated ----------------------------------------------------------

    async def _directory(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "newNonce": self.url("nonce"),
                "newAccount": self.url("new-acct"),
                "newOrder": self.url("new-order"),
                "renewalInfo": self.url("ari"),
                "meta": {"termsOfService": self.url("terms")},
            }
        )

    async def _nonce(self, _request: web.Request) -> web.Response:
        return web.Response(headers={"Replay-Nonce": self._fresh_nonce()})

    async def _renewal_info(self, request: web.Request) -> web.Response:
        cert_id = request.match_info["cert_id"]
        found = next((i for i in self.issued.values() if i.ari_id == cert_id), None)
        if found is None:
            return web.json_response(
                {"type": ERROR + "malformed", "detail": "unknown certificate"},
                status=404,
            )
        start, end = found.window()
        return web.json_response(
            {"suggestedWindow": {"start": start.isoformat(), "end": end.isoformat()}},
            headers={"Retry-After": str(6 * 3600)},
        )

    # --- signed requests --------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.StreamResponse:
        jws = await request.json()
        header = json.loads(b64url_decode(jws["protected"]))
        payload = json.loads(b64url_decode(jws["payload"])) if jws["payload"] else None
        nonce = header.get("nonce")
        if nonce not in self.nonces:
            return self.problem(400, "badNonce", "unknown nonce")
        self.nonces.discard(nonce)
        if self.bad_nonce_rate and self.rng.random() < self.bad_nonce_rate:
            self.bad_nonces_sent += 1
            return self.problem(400, "badNonce", "JWS has an invalid anti-replay nonce")
        path = request.match_info["path"]
        if path == "new-acct":
            return self._new_account(header, payload or {})
        account = str(header.get("kid", "")).rsplit("/", 1)[-1]
        if account not in self.thumbprints:
            return self.problem(400, "accountDoesNotExist", "unknown account")
        kind, _, ident = path.partition("/")
        if kind == "new-order":
            return await self._new_order(request, account, payload or {})
        number = int(ident.split("/")[0]) if ident.split("/")[0].isdigit() else -1
        if kind == "authz" and number in self.authzs:
            return self._reply(200, self._authz_json(self.authzs[number]))
        if kind == "chall" and number in self.authzs:
            return self._validate(account, self.authzs[number])
        if kind == "order" and number in self.orders:
            if ident.endswith("/finalize"):
                return await self._finalize(self.orders[number], payload or {})
            return self._reply(200, self._order_json(self.orders[number]))
        if kind == "cert" and number in self.chains:
            return web.Response(
                body=self.chains[number],
                content_type="application/pem-certificate-chain",
                headers={"Replay-Nonce": self._fresh_nonce()},
            )
        return self.problem(404, "malformed", f"no such resource {path}")

    def _new_account(
        self, header: dict[str, Any], payload: dict[str, Any]
    ) -> web.Response:
        thumbprint = jwk_thumbprint(header["jwk"])
        account = self.accounts.get(thumbprint)
        if account is None:
            if payload.get("onlyReturnExisting"):
                return self.problem(400, "accountDoesNotExist", "no account for key")
            account = str(self._id())
            self.accounts[thumbprint] = account
            self.thumbprints[account] = thumbprint
        return self._reply(
            200,
            {"status": "valid"},
            {"Location": self.url(f"acct/{account}")},
        )

    async def _new_order(
        self, request: web.Request, account: str, payload: dict[str, Any]
    ) -> web.StreamResponse:
        names = [i["value"] for i in payload.get("identifiers", [])]
        replaces = payload.get("replaces")
        order = OrderRecord(
            self._id(),
            account,
            names,
            simulated_now(),
            replaces,
            needed=self.order_needed(),
        )
        fault = self.faults(order)
        self.bad_nonce_rate = 0.5 if fault == "bad_nonce" else 0.0
        if fault in ("duckdns_html", "duckdns_500", "duckdns_hang"):
            self.duckdns.txt_outage = fault.removeprefix("duckdns_")  # type: ignore[assignment]
        if fault == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if fault == "ca_503":
            return self.problem(
                503, "serverInternal", "maintenance", timedelta(hours=1)
            )
        if fault == "ca_500":
            return self.problem(500, "serverInternal", "internal error")
        if fault == "rate_limited":
            return self.problem(
                429,
                "rateLimited",
                "too many certificates (5) already issued for this exact set of identifiers",
                timedelta(hours=2),
            )
        duplicates = self.issued_for(names, order.placed)
        if len(duplicates) >= DUPLICATE_LIMIT:
            self.duplicate_refusals += 1
            return self.problem(
                429,
                "rateLimited",
                "too many certificates (5) already issued for this exact set of "
                "identifiers in the last 168h0m0s",
                min(duplicates) + DUPLICATE_PERIOD - order.placed,
            )
        if replaces is not None:
            replaced = next(
                (i for i in self.issued.values() if i.ari_id == replaces), None
            )
            if fault == "refuse_replaces" or (replaced and replaced.account != account):
                return self.problem(
                    403,
                    "unauthorized",
                    "requester account did not request the certificate being replaced by this order",
                )
            if replaced is None:
                return self.problem(404, "malformed", "no certificate with that serial")
            if replaced.replaced:
                return self.problem(409, "alreadyReplaced", "already replaced")
        self.orders[order.id] = order
        for name in names:
            authz = AuthzRecord(self._id(), name, b64url(self.rng.randbytes(16)))
            self.authzs[authz.id] = authz
            order.authorizations.append(authz.id)
        self._fault_for_order[order.id] = fault
        return self._reply(
            201, self._order_json(order), {"Location": self.url(f"order/{order.id}")}
        )

    def _validate(self, account: str, authz: AuthzRecord) -> web.Response:
        order = next(o for o in self.orders.values() if authz.id in o.authorizations)
        if self._fault_for_order.get(order.id) == "txt_overwritten":
            # Another tool set the DuckDNS TXT value between our check and ours.
            label = authz.name.removesuffix(".duckdns.org")
            self.duckdns.records[label].txt = "another-tool-was-here"
        label = authz.name.removeprefix("*.").removesuffix(".duckdns.org")
        expected = dns01_txt_value(authz.token, self.thumbprints[account])
        record = self.duckdns.records.get(label)
        authz.status = "valid" if record and record.txt == expected else "invalid"
        if authz.status == "invalid":
            order.status = "invalid"
        elif all(self.authzs[a].status == "valid" for a in order.authorizations):
            order.status = "ready"
        return self._reply(200, self._challenge_json(authz))

    async def _finalize(
        self, order: OrderRecord, payload: dict[str, Any]
    ) -> web.StreamResponse:
        if self._fault_for_order.get(order.id) == "restart_mid_order":
            self._fault_for_order[order.id] = None
            self.holding = True
            self.on_hold()
            await self.release.wait()
            self.release.clear()
            self.holding = False
            return self.problem(500, "serverInternal", "the client went away")
        if order.status != "ready":
            return self.problem(403, "orderNotReady", f"order is {order.status}")
        csr = x509.load_der_x509_csr(b64url_decode(payload["csr"]))
        # Whole seconds, as X.509 dates them.
        now = simulated_now().replace(microsecond=0)
        leaf, chain = certs.shared_pki().intermediate.issue_for_public_key(
            order.names, csr.public_key(), not_before=now, not_after=now + self.lifetime
        )
        number = self._id()
        ari_id = ari_cert_id(leaf)
        assert ari_id is not None
        self.issued[number] = Issued(
            format(leaf.serial_number, "x"),
            ari_id,
            order.account,
            now,
            now + self.lifetime,
            late=len(self.issued) % LATE_EVERY == LATE_EVERY - 1,
        )
        self.issued_times.append((frozenset(order.names), now))
        if order.replaces is not None:
            for issued in self.issued.values():
                if issued.ari_id == order.replaces:
                    issued.replaced = True
        self.chains[number] = chain
        order.status = "valid"
        order.certificate = number
        return self._reply(200, self._order_json(order))

    # --- JSON ---------------------------------------------------------------------------

    def _order_json(self, order: OrderRecord) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": order.status,
            "identifiers": [{"type": "dns", "value": n} for n in order.names],
            "authorizations": [self.url(f"authz/{a}") for a in order.authorizations],
            "finalize": self.url(f"order/{order.id}/finalize"),
        }
        if order.certificate is not None:
            body["certificate"] = self.url(f"cert/{order.certificate}")
        return body

    def _challenge_json(self, authz: AuthzRecord) -> dict[str, Any]:
        return {
            "type": "dns-01",
            "url": self.url(f"chall/{authz.id}"),
            "status": authz.status,
            "token": authz.token,
        }

    def _authz_json(self, authz: AuthzRecord) -> dict[str, Any]:
        return {
            "identifier": {"type": "dns", "value": authz.name},
            "status": authz.status,
            "challenges": [self._challenge_json(authz)],
        }
