"""A stand-in for the Supervisor of Home Assistant OS: its add-on API.

Answers as the real Supervisor does (supervisor/api/apps.py, api/utils.py,
exceptions.py of home-assistant/supervisor), so that the real
``aiohasupervisor`` client of the ``hassio`` integration reads it:

* every answer is ``{"result": "ok", "data": ...}`` or ``{"result": "error",
  "message": ..., "error_key"?, "extra_fields"?}`` with the error's status
  (400 by default, 401 without the token, 404 for an unknown add-on, 500
  for an unknown error);
* ``GET /addons`` lists the installed add-ons with the list fields,
  ``GET /addons/<slug>/info`` has every info field (the client refuses an
  answer that misses one);
* ``POST /addons/<slug>/restart`` stops the add-on and starts it; it answers
  once the container runs, even when the service in it dies right after (the
  state then says ``error``), as the Supervisor waits only for the container;
  a restart while another job of the add-on runs is refused (400), a Docker
  failure is ``addon_unknown_error`` (500).

Faults per add-on (:class:`Fault`): refuse the restart, fail it in Docker,
never answer. An add-on with a ``service`` (the NGINX proxy add-on runs the
real nginx: :mod:`tests.fakes.nginx`) restarts that service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import web

HOST = "127.0.0.1"
TOKEN = "sandbox-supervisor-token"


class Service(Protocol):
    """What runs inside an add-on's container."""

    async def start(self) -> bool:
        """Start; False when it exits at once."""
        ...

    async def stop(self) -> None:
        """Stop."""
        ...


class Fault(StrEnum):
    """How a restart goes wrong."""

    JOB_RUNNING = "job_running"  # another job of the add-on runs: refused, 400
    DOCKER_ERROR = "docker_error"  # the container cannot start: 500
    NO_ANSWER = "no_answer"  # the Supervisor never answers


@dataclass
class FakeAddon:
    """One installed add-on (the fields a test cares about; the rest are fixed)."""

    slug: str
    name: str
    state: str = "started"
    options: dict[str, Any] = field(default_factory=dict)
    network: dict[str, int | None] | None = None
    repository: str = "core"
    version: str = "3.11.0"
    service: Service | None = None
    fault: Fault | None = None
    restarts: int = 0

    def list_fields(self) -> dict[str, Any]:
        """What ``GET /addons`` shows of it."""
        return {
            "name": self.name,
            "slug": self.slug,
            "description": f"{self.name} (stand-in)",
            "advanced": False,
            "stage": "stable",
            "version": self.version,
            "version_latest": self.version,
            "update_available": False,
            "available": True,
            "detached": False,
            "homeassistant": None,
            "state": self.state,
            "repository": self.repository,
            "build": False,
            "url": None,
            "icon": True,
            "logo": True,
            "system_managed": False,
        }

    def info_fields(self) -> dict[str, Any]:
        """What ``GET /addons/<slug>/info`` shows of it (every field)."""
        return {
            **self.list_fields(),
            "hostname": self.slug.replace("_", "-"),
            "dns": [f"{self.slug.replace('_', '-')}.local.hass.io"],
            "long_description": None,
            "protected": True,
            "rating": 5,
            "boot_config": "auto",
            "boot": "auto",
            "options": self.options,
            "schema": [],
            "arch": ["aarch64", "amd64"],
            "machine": [],
            "network": self.network,
            "network_description": None,
            "host_network": False,
            "host_pid": False,
            "host_ipc": False,
            "host_uts": False,
            "host_dbus": False,
            "privileged": [],
            "full_access": False,
            "apparmor": "default",
            "changelog": True,
            "documentation": True,
            "stdin": False,
            "hassio_api": True,
            "hassio_role": "default",
            "auth_api": False,
            "homeassistant_api": False,
            "gpio": False,
            "usb": False,
            "uart": False,
            "kernel_modules": False,
            "devicetree": False,
            "udev": False,
            "docker_api": False,
            "video": False,
            "audio": False,
            "startup": "application",
            "services": [],
            "discovery": [],
            "translations": {},
            "ingress": False,
            "signed": False,
            "webui": None,
            "ingress_entry": None,
            "ingress_url": None,
            "ingress_port": None,
            "ingress_panel": None,
            "audio_input": None,
            "audio_output": None,
            "auto_update": False,
            "ip_address": "172.30.33.2",
            "watchdog": False,
            "devices": [],
            "system_managed_config_entry": None,
        }


def _ok(data: Any = None) -> web.Response:
    return web.json_response({"result": "ok", "data": {} if data is None else data})


def _error(
    message: str,
    status: int = 400,
    error_key: str | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"result": "error", "message": message}
    if error_key:
        body["error_key"] = error_key
    if extra_fields:
        body["extra_fields"] = extra_fields
    return web.json_response(body, status=status)


@dataclass
class FakeSupervisor:
    """The add-on API on 127.0.0.1; ``ip`` is what ``HassIO`` is given."""

    addons: dict[str, FakeAddon] = field(default_factory=dict)
    token: str = TOKEN
    requests: list[str] = field(default_factory=list)
    stalled: bool = False
    """Every request waits forever (the Supervisor hangs or restarts)."""
    _jobs: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    ip: str = ""

    def add(self, addon: FakeAddon) -> FakeAddon:
        """Install an add-on."""
        self.addons[addon.slug] = addon
        return addon

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        if self.stalled:
            return await self._hang()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            # The real one answers 401 without a body for a missing or wrong token.
            raise web.HTTPUnauthorized
        response: web.StreamResponse = await handler(request)
        return response

    async def _hang(self) -> web.Response:
        """Answer nothing until the client gives up (or the stand-in stops)."""
        await self._released.wait()
        return _error("Supervisor is shutting down", 503)

    def _addon(self, request: web.Request) -> FakeAddon | web.Response:
        slug = request.match_info["slug"]
        if (addon := self.addons.get(slug)) is None:
            return _error(f"App {slug} does not exist", 404)
        return addon

    async def _list(self, request: web.Request) -> web.Response:
        return _ok({"addons": [addon.list_fields() for addon in self.addons.values()]})

    async def _info(self, request: web.Request) -> web.Response:
        addon = self._addon(request)
        if isinstance(addon, web.Response):
            return addon
        return _ok(addon.info_fields())

    async def _restart(self, request: web.Request) -> web.Response:
        addon = self._addon(request)
        if isinstance(addon, web.Response):
            return addon
        if addon.fault is Fault.NO_ANSWER:
            return await self._hang()
        if addon.fault is Fault.JOB_RUNNING or addon.slug in self._jobs:
            return _error(
                f"'Addon.restart' blocked from execution, another job of {addon.slug}"
                " is running",
            )
        self._jobs.add(addon.slug)
        try:
            addon.restarts += 1
            if addon.service is not None:
                await addon.service.stop()
            addon.state = "stopped"
            if addon.fault is Fault.DOCKER_ERROR:
                addon.state = "error"
                return _error(
                    f"An unknown error occurred with addon {addon.slug}. Check"
                    " supervisor logs for details (check with 'ha supervisor logs')",
                    500,
                    "addon_unknown_error",
                    {"addon": addon.slug, "logs_command": "ha supervisor logs"},
                )
            started = addon.service is None or await addon.service.start()
            addon.state = "started" if started else "error"
            return _ok()
        finally:
            self._jobs.discard(addon.slug)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[FakeSupervisor]:
        """Listen on a free port of 127.0.0.1 until the block ends."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/addons", self._list)
        app.router.add_get("/addons/{slug}/info", self._info)
        app.router.add_post("/addons/{slug}/restart", self._restart)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        server: Any = site._server
        port = server.sockets[0].getsockname()[1]
        self.ip = f"{HOST}:{port}"
        try:
            yield self
        finally:
            self._released.set()
            await self._runner.cleanup()
            for addon in self.addons.values():
                if addon.service is not None:
                    await addon.service.stop()
