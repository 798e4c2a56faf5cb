"""The certificate coordinators: local files and remote TLS endpoints.

`LocalCertificateMonitor` reads the managed and served files in the executor
(hourly, and within a minute of a modification time change);
`EndpointMonitor` fetches the certificates remote endpoints present (every 6
hours, at most 10 handshakes at a time, on a private event loop in an
executor thread). Both judge what they saw with
`status.evaluate` and wake their listeners whenever a judgement changes (a day
passes, the warning threshold or the expiry is reached).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
import os
from typing import TYPE_CHECKING, ClassVar

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_time_interval,
)
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from custom_components.secure_remote_access.const import (
    CONF_EXPIRY_WARNING_DAYS,
    DEFAULT_EXPIRY_WARNING_DAYS,
    ENDPOINT_CHECK_INTERVAL,
    ENDPOINT_CONCURRENCY,
    LOCAL_CHECK_INTERVAL,
    LOGGER,
    MTIME_POLL_INTERVAL,
)
from custom_components.secure_remote_access.helpers import cancel_callback, same_file
from custom_components.secure_remote_access.protocol.endpoint_list import EndpointOption
from custom_components.secure_remote_access.protocol.tls import (
    DEFAULT_TIMEOUT,
    Endpoint,
    Resolver,
    inspect_endpoints,
)
from custom_components.secure_remote_access.protocol.x509 import (
    CertificateError,
    read_certificate_pair,
)
from custom_components.secure_remote_access.served import served_files
from custom_components.secure_remote_access.status import (
    CertificateKind,
    CertificateSource,
    CertificateStatus,
    Observation,
    endpoint_observation,
    endpoint_source,
    evaluate,
    next_transition,
    pair_observation,
)

if TYPE_CHECKING:
    from custom_components.secure_remote_access.certificate import CertificateManager
    from custom_components.secure_remote_access.models import (
        SecureRemoteAccessConfigEntry,
    )

type FileSignature = tuple[int, int, int] | None


def file_signatures(paths: Iterable[str]) -> dict[str, FileSignature]:
    """Modification time, size and inode of each file (None if absent). Blocking."""
    signatures: dict[str, FileSignature] = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            signatures[path] = None
        else:
            signatures[path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    return signatures


def read_local_certificate(source: CertificateSource) -> Observation:
    """Read a certificate file and its key. Blocking."""
    assert source.certificate_path is not None
    assert source.key_path is not None
    try:
        pair = read_certificate_pair(source.certificate_path, source.key_path)
    except CertificateError as err:
        return pair_observation(source, err)
    return pair_observation(source, pair)


def _local_paths(sources: Iterable[CertificateSource]) -> list[str]:
    paths: dict[str, None] = {}
    for source in sources:
        paths |= dict.fromkeys(filter(None, (source.certificate_path, source.key_path)))
    return list(paths)


def read_local_certificates(
    sources: Sequence[CertificateSource],
) -> tuple[dict[str, Observation], dict[str, FileSignature]]:
    """Stat, then read every local certificate. Blocking.

    The signatures are taken before reading: a change during the read shows
    up as a difference at the next poll.
    """
    signatures = file_signatures(_local_paths(sources))
    return {source.key: read_local_certificate(source) for source in sources}, (
        signatures
    )


async def async_local_sources(
    hass: HomeAssistant, manager: CertificateManager | None
) -> list[CertificateSource]:
    """The managed certificate and the one Home Assistant serves, once each."""
    served = served_files(hass)
    served_cert = served.certificate if served else None
    sources: list[CertificateSource] = []
    same = False
    if manager is not None:
        settings = manager.settings
        managed_cert = str(settings.certificate_path)
        if served_cert is not None:
            same = await hass.async_add_executor_job(
                same_file, managed_cert, served_cert
            )
        sources.append(
            CertificateSource(
                key=CertificateKind.MANAGED.value,
                kind=CertificateKind.MANAGED,
                name=managed_cert,
                certificate_path=managed_cert,
                key_path=str(settings.private_key_path),
                expected_names=settings.names,
                served=same,
            )
        )
    if served is not None and not same:
        sources.append(
            CertificateSource(
                key=CertificateKind.SERVED.value,
                kind=CertificateKind.SERVED,
                name=served.certificate,
                certificate_path=served.certificate,
                key_path=served.key,
            )
        )
    return sources


class CertificateMonitor(DataUpdateCoordinator[dict[str, Observation]]):
    """Observes some certificates; data maps each source's key to what was seen.

    A single unreadable file or unreachable endpoint is an observation, not a
    failed update: entities stay available and report the problem.
    """

    config_entry: SecureRemoteAccessConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        *,
        name: str,
        update_interval: timedelta,
        sources: Sequence[CertificateSource],
    ) -> None:
        """Watch ``sources`` with the entry's warning threshold."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=name,
            update_interval=update_interval,
            always_update=False,
        )
        self.sources: dict[str, CertificateSource] = {
            source.key: source for source in sources
        }
        self.warning_days = int(
            entry.options.get(CONF_EXPIRY_WARNING_DAYS, DEFAULT_EXPIRY_WARNING_DAYS)
        )
        self._unsub_transition: CALLBACK_TYPE | None = None

    def status(self, key: str, now: datetime | None = None) -> CertificateStatus | None:
        """The judgement of one certificate now; None before it was observed."""
        if self.data is None or (observation := self.data.get(key)) is None:
            return None
        return evaluate(
            self.sources[key], observation, now or dt_util.utcnow(), self.warning_days
        )

    def statuses(self, now: datetime | None = None) -> list[CertificateStatus]:
        """The judgement of every observed certificate now."""
        now = now or dt_util.utcnow()
        return [
            status
            for key in self.sources
            if (status := self.status(key, now)) is not None
        ]

    @callback
    def async_update_listeners(self) -> None:
        """Tell listeners, then wake them again when a judgement changes."""
        super().async_update_listeners()
        self._schedule_transition()

    @callback
    def _schedule_transition(self) -> None:
        cancel_callback(self._unsub_transition)
        self._unsub_transition = None
        if self._shutdown_requested or not self.data:
            return
        infos = [obs.info for obs in self.data.values() if obs.info is not None]
        when = next_transition(infos, dt_util.utcnow(), self.warning_days)
        if when is not None:
            self._unsub_transition = async_track_point_in_utc_time(
                self.hass,
                HassJob(self._async_transition, cancel_on_shutdown=True),
                when,
            )

    @callback
    def _async_transition(self, _now: datetime) -> None:
        self._unsub_transition = None
        self.async_update_listeners()

    async def async_shutdown(self) -> None:
        """Stop every timer."""
        await super().async_shutdown()
        cancel_callback(self._unsub_transition)
        self._unsub_transition = None


class LocalCertificateMonitor(CertificateMonitor):
    """The managed and served certificate files of an entry.

    Read hourly, and as soon as a minutely ``stat`` sees a file change.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        sources: Sequence[CertificateSource],
    ) -> None:
        """Watch the given local sources."""
        super().__init__(
            hass,
            entry,
            name=f"Certificates of {entry.title}",
            update_interval=LOCAL_CHECK_INTERVAL,
            sources=sources,
        )
        self.paths = _local_paths(sources)
        self._signatures: dict[str, FileSignature] = {}
        self._unsub_poll: CALLBACK_TYPE | None = None

    @callback
    def async_watch_files(self) -> None:
        """Start the minutely modification-time poll."""
        if self.paths and self._unsub_poll is None:
            self._unsub_poll = async_track_time_interval(
                self.hass,
                self._async_poll,
                MTIME_POLL_INTERVAL,
                name=f"{self.name} file watch",
                cancel_on_shutdown=True,
            )

    async def _async_poll(self, _now: datetime) -> None:
        signatures = await self.hass.async_add_executor_job(file_signatures, self.paths)
        if signatures != self._signatures and not self._shutdown_requested:
            LOGGER.debug("Certificate files changed: reading them again")
            await self.async_refresh()

    async def _async_update_data(self) -> dict[str, Observation]:
        if not self.sources:
            return {}
        observations, self._signatures = await self.hass.async_add_executor_job(
            read_local_certificates, list(self.sources.values())
        )
        return observations

    async def async_shutdown(self) -> None:
        """Stop the file watch too."""
        await super().async_shutdown()
        cancel_callback(self._unsub_poll)
        self._unsub_poll = None


class EndpointMonitor(CertificateMonitor):
    """The remote endpoints listed in an entry's options, every 6 hours."""

    resolver: ClassVar[Resolver | None] = None
    """Name resolution for the checks; None: the system resolver."""
    timeout: ClassVar[float] = DEFAULT_TIMEOUT
    """Seconds one endpoint check may take."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        endpoints: Sequence[EndpointOption],
    ) -> None:
        """Watch the given endpoints."""
        super().__init__(
            hass,
            entry,
            name=f"TLS endpoints of {entry.title}",
            update_interval=ENDPOINT_CHECK_INTERVAL,
            sources=[endpoint_source(endpoint) for endpoint in endpoints],
        )

    async def _async_update_data(self) -> dict[str, Observation]:
        if not self.sources:
            return {}
        sources = list(self.sources.values())
        results = await inspect_endpoints(
            [
                Endpoint(
                    source.endpoint.host,
                    source.endpoint.port,
                    ca_bundle=source.endpoint.ca_bundle,
                )
                for source in sources
                if source.endpoint is not None
            ],
            concurrency=ENDPOINT_CONCURRENCY,
            timeout_seconds=type(self).timeout,
            resolver=type(self).resolver,
            # The handshakes' CPU work would stall Home Assistant's loop.
            own_loop=True,
        )
        return {
            source.key: endpoint_observation(result)
            for source, result in zip(sources, results, strict=True)
        }
