"""A scripted ACME CA for the client tests: each URL answers from a script."""

from __future__ import annotations

from dataclasses import dataclass, field
import json
from typing import Any

from aiohttp import web

from custom_components.secure_remote_access.protocol.acme.jws import b64url_decode

NAME = "myhome.duckdns.org"
PEM_CHAIN = "application/pem-certificate-chain"


@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    nonce: bool = True


@dataclass
class Request:
    """What the scripted CA received."""

    method: str
    path: str
    header: dict[str, Any] | None = None
    payload: Any = None


@dataclass
class ScriptedAcme:
    """Answers each path from its script; the last reply of a path repeats."""

    base: str = ""
    script: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    counter: int = 0

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return f"{self.base}/{path}"

    def on(self, path: str, *replies: Reply) -> None:
        """Script the answers of ``path``, in order."""
        self.script[path] = list(replies)

    def posted(self, path: str) -> list[Request]:
        """The POSTs received for ``path``."""
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def _directory(self) -> Reply:
        return Reply(
            json={
                "newNonce": self.url("nonce"),
                "newAccount": self.url("new-acct"),
                "newOrder": self.url("new-order"),
                "renewalInfo": self.url("ari/"),
            },
            nonce=False,
        )

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request and send the next scripted reply."""
        path = request.match_info["path"]
        entry = Request(request.method, path)
        if request.method == "POST":
            jws = await request.json()
            entry.header = json.loads(b64url_decode(jws["protected"]))
            entry.payload = (
                json.loads(b64url_decode(jws["payload"])) if jws["payload"] else None
            )
        self.requests.append(entry)
        replies = self.script.get(path)
        if replies:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        elif path == "dir":
            reply = self._directory()
        elif path == "nonce":
            reply = Reply(json=None)
        else:
            reply = Reply(status=404, json={"type": "about:blank", "detail": path})
        headers = dict(reply.headers)
        if reply.nonce:
            self.counter += 1
            headers["Replay-Nonce"] = f"nonce-{self.counter}"
        if reply.json is not None:
            body = json.dumps(reply.json).encode()
        else:
            body = reply.body or b""
        return web.Response(
            status=reply.status,
            body=body,
            headers={"Content-Type": reply.content_type, **headers},
        )


class RecordingSolver:
    """Remembers what it publishes; clearing can be made to fail."""

    def __init__(self, *, fail_clear: bool = False) -> None:
        self.history: list[tuple[str, str]] = []
        self.cleared: list[str] = []
        self.fail_clear = fail_clear

    async def set_txt(self, identifier: str, value: str) -> None:
        """Record the value."""
        self.history.append((identifier, value))

    async def clear_txt(self, identifier: str) -> None:
        """Record the clearing, or fail."""
        self.cleared.append(identifier)
        if self.fail_clear:
            raise OSError("DuckDNS unreachable")


class Visible:
    """A propagation checker that sees every value at once."""

    def __init__(self) -> None:
        self.waited: list[tuple[str, str]] = []

    async def wait_for_txt(self, identifier: str, value: str, deadline: float) -> None:
        """Return at once."""
        self.waited.append((identifier, value))


def order(ca: ScriptedAcme, status: str, **extra: Any) -> dict[str, Any]:
    """An order object for NAME with one authorization."""
    return {
        "status": status,
        "identifiers": [{"type": "dns", "value": NAME}],
        "authorizations": [ca.url("authz/1")],
        "finalize": ca.url("order/1/finalize"),
        **extra,
    }


def authz(ca: ScriptedAcme, status: str, *challenges: dict[str, Any]) -> dict[str, Any]:
    """An authorization object for NAME."""
    return {
        "identifier": {"type": "dns", "value": NAME},
        "status": status,
        "challenges": list(challenges),
    }


def dns01(ca: ScriptedAcme, status: str = "pending") -> dict[str, Any]:
    """A dns-01 challenge object."""
    return {
        "type": "dns-01",
        "url": ca.url("chall/1"),
        "status": status,
        "token": "tok",
    }


def new_order_reply(ca: ScriptedAcme, status: str = "pending", **extra: Any) -> Reply:
    """The newOrder answer: 201 with Location."""
    return Reply(
        201,
        json=order(ca, status, **extra),
        headers={"Location": ca.url("order/1")},
    )


def cert_reply(pem: bytes, **headers: str) -> Reply:
    """A certificate download answer."""
    return Reply(body=pem, content_type=PEM_CHAIN, headers=headers)


class Zones:
    """A DuckDNS-like solver and lookup: one TXT value per zone."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.lookups: list[str] = []
        self.writes: list[tuple[str, str]] = []
        self.waits: list[str] = []

    def zone_of(self, identifier: str) -> str:
        """The last two labels plus duckdns.org."""
        return ".".join(identifier.removeprefix("*.").split(".")[-3:])

    async def set_persist_txt(self, identifier: str, value: str) -> None:
        """Write the zone's one value."""
        self.writes.append((self.zone_of(identifier), value))
        self.values[self.zone_of(identifier)] = value

    async def query_txt(self, name: str) -> tuple[str, ...] | None:
        """The zone's value."""
        self.lookups.append(name)
        value = self.values.get(self.zone_of(name), "")
        return (value,) if value else ()

    async def wait_for_record(self, record: str, value: str, deadline: float) -> None:
        """Visible at once."""
        self.waits.append(record)
