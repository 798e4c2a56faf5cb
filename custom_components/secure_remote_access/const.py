"""Constants for Secure Remote Access."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "secure_remote_access"
LOGGER: Final = logging.getLogger(__package__)

# Config entry data.
CONF_DOMAINS: Final = "domains"
CONF_DUCKDNS_URL: Final = "duckdns_url"

# Config flow form fields.
FIELD_DOMAIN: Final = "domain"

DUCKDNS_ACCOUNT_URL: Final = "https://www.duckdns.org/"
