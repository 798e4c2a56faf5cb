"""Constants for Secure Remote Access."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
import logging
from typing import Final

DOMAIN: Final = "secure_remote_access"
LOGGER: Final = logging.getLogger(__package__)

# Config entry data.
CONF_DOMAINS: Final = "domains"
CONF_DUCKDNS_URL: Final = "duckdns_url"

# Config flow form fields.
FIELD_DOMAIN: Final = "domain"

# Options.
CONF_UPDATE_INTERVAL: Final = "update_interval"
CONF_IPV6_MODE: Final = "ipv6_mode"
CONF_IPV6_ADDRESS: Final = "ipv6_address"
DEFAULT_UPDATE_INTERVAL: Final = 5
MIN_UPDATE_INTERVAL: Final = 1
MAX_UPDATE_INTERVAL: Final = 60


class Ipv6Mode(StrEnum):
    """How the IPv6 address DuckDNS records is chosen."""

    OFF = "off"
    AUTOMATIC = "automatic"
    FIXED = "fixed"


# Waits after the 1st, 2nd, 3rd and later consecutive DuckDNS failures.
DNS_BACKOFF: Final = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
)

DUCKDNS_ACCOUNT_URL: Final = "https://www.duckdns.org/"
CORE_DUCKDNS_DOMAIN: Final = "duckdns"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
SERVICE_UPDATE_DNS: Final = "update_dns"

# Security checklist.
CONF_DISABLED_CHECKS: Final = "disabled_checks"
SERVICE_RUN_SECURITY_CHECKS: Final = "run_security_checks"
