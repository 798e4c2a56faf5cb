"""Load Home Assistant before the test plugin, and bridge what newer releases moved.

Loaded by ``scripts/test`` with ``-p tests.ha_compat`` before any other plugin.
pytest-homeassistant-custom-component 0.13.375 (the newest release) was made
for Home Assistant 2026.10.4; the version matrix also runs the newest Home
Assistant release with it:

* 2026.11 aliases ``httpx`` to ``httpx2`` when ``homeassistant`` is imported,
  and refuses if ``httpx`` came first; the plugin imports ``respx`` (and so
  ``httpx``) before ``homeassistant``. Importing ``homeassistant`` here first
  keeps the order right.
* 2026.11 no longer re-exports the logger helper the plugin imports from
  ``homeassistant.components.logger``.

With the pinned release nothing here changes anything.
"""

from __future__ import annotations

import homeassistant  # noqa: F401  # before the plugin imports httpx
from homeassistant.components import logger

if not hasattr(logger, "_clear_logger_overwrites"):
    from homeassistant.components.logger.helpers import _clear_logger_overwrites

    logger._clear_logger_overwrites = _clear_logger_overwrites  # type: ignore[attr-defined]
