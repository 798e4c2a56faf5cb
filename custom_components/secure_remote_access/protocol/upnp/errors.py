"""Why a gateway could not be read, and the one translation of failures into it.

No Home Assistant imports. Everything a router sends is untrusted input: a
reply that makes no sense, whatever exception it raises while being parsed,
is `GatewayReason.INVALID_REPLY`, never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Final

import aiohttp
from async_upnp_client.exceptions import UpnpCommunicationError


class GatewayReason(StrEnum):
    """Why the router's facts are unknown."""

    NO_GATEWAY = "no_gateway"
    UNREACHABLE = "gateway_unreachable"
    TIMEOUT = "gateway_timeout"
    INVALID_REPLY = "gateway_invalid_reply"
    REFUSED = "upnp_refused"


class GatewayError(Exception):
    """The gateway could not be queried; ``reason`` says why, ``detail`` how."""

    def __init__(self, reason: GatewayReason, detail: str) -> None:
        """Keep the reason and a short detail for logs and attributes."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ActionRefusedError(Exception):
    """The router answered an action with a UPnP error (or refused it over HTTP)."""

    def __init__(self, action: str, code: int | None, description: str) -> None:
        """Keep the UPnP error code (None for an HTTP refusal) and its text."""
        super().__init__(f"{action}: UPnP error {code} ({description})")
        self.action = action
        self.code = code
        self.description = description


#: What reading a description or an answer that makes no sense can raise
#: (ElementTree's ParseError is a SyntaxError).
MALFORMED: Final = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    ArithmeticError,
    SyntaxError,
    RecursionError,
)


def invalid_reply(detail: str) -> GatewayError:
    """The router answered something that is no usable UPnP."""
    return GatewayError(GatewayReason.INVALID_REPLY, detail)


@asynccontextmanager
async def gateway_errors(timeout_seconds: float) -> AsyncIterator[None]:
    """Bound the block by ``timeout_seconds``; every failure becomes a `GatewayError`.

    UPnP errors the caller does not handle (`ActionRefusedError`) mean the
    router refused: `GatewayReason.REFUSED`.
    """
    try:
        async with asyncio.timeout(timeout_seconds):
            yield
    except GatewayError:
        raise
    except TimeoutError as err:
        raise GatewayError(
            GatewayReason.TIMEOUT, f"no complete answer within {timeout_seconds:g} s"
        ) from err
    except ActionRefusedError as err:
        raise GatewayError(GatewayReason.REFUSED, str(err)) from err
    except (UpnpCommunicationError, aiohttp.ClientError, OSError) as err:
        if caused_by(err, aiohttp.ClientPayloadError):
            # It answered, but cut short (or with a broken encoding).
            raise invalid_reply("the answer ended early") from err
        if caused_by(err, TimeoutError):
            raise GatewayError(
                GatewayReason.TIMEOUT, f"no answer within {timeout_seconds:g} s"
            ) from err
        refused = caused_by(err, ConnectionRefusedError)
        raise GatewayError(
            GatewayReason.UNREACHABLE,
            "connection refused" if refused else type(err).__name__,
        ) from err
    except MALFORMED as err:
        raise invalid_reply(str(err)[:200] or type(err).__name__) from err


def caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``err`` or an exception in its chain (or its args) is a ``kind``."""
    seen: set[int] = set()
    stack: list[object] = [err]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack.extend((current.__cause__, current.__context__, *current.args))
    return False
