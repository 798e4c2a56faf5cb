"""RouterKeeper: what the port-forward and pinhole keepers share.

One change or look at a time (a flow and the schedule), the timer of the
next look, the first look once Home Assistant has started, and the rule
that a proxy add-on restarting is not HTTPS stopping: a forward or
pinhole to a proxy's port is given up only when a second look, five
minutes later, still finds nobody serving the managed certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import Field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, Self

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store

from . import remote_access
from .const import LOGGER
from .protocol.port_forward import ForwardError, Refusal
from .proxy import CertificateServer, async_who_serves_managed

if TYPE_CHECKING:
    from .models import SecureRemoteAccessConfigEntry

#: How often a forward or pinhole is looked at when nothing is due.
KEEP_INTERVAL: Final = timedelta(hours=1)
#: How soon a change the router did not take is tried again.
RETRY_INTERVAL: Final = timedelta(minutes=5)
#: One change with its read-back (several SOAP exchanges).
CHANGE_TIMEOUT: float = 30.0
#: Refusals that asking again does not change (a busy router's 501, a full
#: pinhole table or no answer may pass).
LASTING_REFUSALS: Final = frozenset(
    {
        Refusal.NOT_AUTHORIZED,
        Refusal.PORT_TAKEN,
        Refusal.SAME_PORT_REQUIRED,
        Refusal.ONLY_PERMANENT_LEASES,
        Refusal.REMOTE_HOST_WILDCARD_ONLY,
        Refusal.EXTERNAL_PORT_WILDCARD_ONLY,
        Refusal.INTERNAL_PORT_WILDCARD,
        Refusal.INVALID_ARGS,
        Refusal.NOT_SUPPORTED,
        Refusal.FIREWALL_DISABLED,
        Refusal.INBOUND_PINHOLE_NOT_ALLOWED,
        Refusal.PROTOCOL_NOT_SUPPORTED,
        Refusal.NO_PINHOLE_SERVICE,
    }
)


#: Runs the remote-access check again (after each change).
type Checked = Callable[[], Coroutine[Any, Any, object]]


class KeptState(Protocol):
    """What a keeper's stored state (a dataclass) says of the wanted forward
    or pinhole."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def confirmed(self) -> bool:
        """The router confirmed it at the last look."""

    @property
    def established(self) -> bool:
        """The router has confirmed it at least once."""

    @property
    def refusal(self) -> str | None:
        """Why the last look failed."""

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """The stored form read back."""


class RouterKeeper[StateT: KeptState]:
    """The schedule and the served-or-not rule of a keeper of router state."""

    #: The name of the keeping task.
    task_name = "keep the router's state"
    state: StateT

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        checked: Checked,
        store: Store[dict[str, Any]],
        state: StateT,
    ) -> None:
        """``checked`` runs the remote-access check again after each change;
        ``state`` (what nothing stored means) is kept in ``store``."""
        self.hass = hass
        self.entry = entry
        self._checked = checked
        self._store = store
        self.state = state
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._lock = asyncio.Lock()
        #: Looks the timer has started (a flow or a new address starts others).
        self._timer_looks = 0
        #: `_timer_looks` at the first look that found HTTPS not served.
        self._unserved_at: int | None = None

    async def async_load(self) -> None:
        """Read what an earlier run put on (or asked of) the router."""
        self.state = type(self.state).from_dict(await self._store.async_load())

    async def _async_save(self, state: StateT) -> None:
        """Store ``state`` and make it the keeper's."""
        self.state = state
        await self._store.async_save(state.as_dict())

    async def async_keep(self) -> None:
        """One look: finish what is pending, keep what is wanted."""
        raise NotImplementedError

    @callback
    def _start(self, *, look: bool) -> None:
        """Cancel the timer at unload; ``look`` once Home Assistant has started."""
        self.entry.async_on_unload(self._cancel_timer)
        if not look:
            return

        @callback
        def _started(_hass: HomeAssistant) -> None:
            self._keep_in_background()

        self.entry.async_on_unload(async_at_started(self.hass, _started))

    @callback
    def _check_in_background(self) -> None:
        """Run the check again without keeping the flow waiting (a refused change:
        the sensor no longer shows what the router lost)."""
        self.entry.async_create_background_task(
            self.hass, self._checked(), "remote-access check after a refused change"
        )

    @callback
    def _keep_in_background(self) -> None:
        self.entry.async_create_background_task(
            self.hass, self.async_keep(), self.task_name
        )

    @callback
    def _cancel_timer(self) -> None:
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    @callback
    def _schedule(self, delay: timedelta) -> None:
        """Look again in ``delay`` (replacing the look planned before)."""
        self._cancel_timer()

        @callback
        def _due(_now: Any) -> None:
            self._unsub_timer = None
            self._timer_looks += 1
            self._keep_in_background()

        self._unsub_timer = async_call_later(self.hass, delay, _due)

    async def _async_served(self, port: int) -> tuple[CertificateServer | None, bool]:
        """Who serves the managed certificate for our ``port``, and whether to
        act on the answer now (False: nobody, but a proxy gets a second look)."""
        served = await async_who_serves_managed(self.hass, self.entry)
        if served is not None:
            self._unserved_at = None
            return served, True
        # A proxy add-on restarting or a Supervisor that does not answer
        # looks the same: given up only when the timer's look, five minutes
        # later, agrees (a look a new address starts in between is not that
        # second look). A port of Home Assistant's own now serves plain
        # HTTP: at once.
        to_proxy = port != remote_access.home_assistant_port(self.hass)
        if to_proxy and self._unserved_at is None:
            LOGGER.debug("The managed certificate is not served; looking again")
            self._unserved_at = self._timer_looks
            self._schedule(RETRY_INTERVAL)
            return None, False
        if to_proxy and self._timer_looks == self._unserved_at:
            return None, False  # the second look is not due yet
        self._unserved_at = None
        return None, True

    async def _async_not_kept(
        self, what: str, err: ForwardError, *, was_confirmed: bool
    ) -> None:
        """The router did not keep ``what`` (the wanted forward or pinhole).

        One it never confirmed (Home Assistant stopped while it was being
        added) and now refuses for good is given up; otherwise it is asked
        for again every five minutes, with one warning until it is kept again.
        """
        state = self.state
        if err.reason in LASTING_REFUSALS and not state.established:
            LOGGER.warning(
                "The router refused %s, asked for when Home Assistant stopped "
                "(%s): it is given up",
                what,
                err.reason,
            )
            await self._async_save(replace(state, wanted=None, confirmed=False))
            await self._checked()
            return
        if state.refusal is None:
            LOGGER.warning(
                "%s cannot be kept (%s); trying again every %d minutes",
                what[0].upper() + what[1:],
                err.reason,
                RETRY_INTERVAL.seconds // 60,
            )
        LOGGER.debug("Keeping %s: %s", what, err.detail)
        await self._async_save(
            replace(state, confirmed=False, refusal=err.reason.value)
        )
        self._schedule(RETRY_INTERVAL)
        if was_confirmed:
            await self._checked()
