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
#: Testing only: the description URL of a UPnP gateway, instead of discovery.
CONF_UPNP_LOCATION: Final = "upnp_location"
#: The collapsed form section that holds the fields only tests and sandboxes need.
SECTION_TESTING: Final = "testing"

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

# Certificates (entry options).
CONF_ACME_DIRECTORY: Final = "acme_directory"
CONF_ACME_DIRECTORY_URL: Final = "acme_directory_url"
CONF_EMAIL: Final = "email"
CONF_ACCEPT_TERMS: Final = "accept_terms"
CONF_KEY_TYPE: Final = "key_type"
CONF_WILDCARD: Final = "wildcard"
CONF_PROFILE: Final = "profile"
CONF_CERTIFICATE_PATH: Final = "certificate_path"
CONF_PRIVATE_KEY_PATH: Final = "private_key_path"
CONF_ACME_CA_BUNDLE: Final = "acme_ca_bundle"
CONF_EAB_KID: Final = "eab_kid"
CONF_EAB_HMAC_KEY: Final = "eab_hmac_key"
CONF_DNS_SERVER: Final = "dns_server"
CONF_EXTRA_NAMES: Final = "extra_names"
CONF_VALIDATION_METHOD: Final = "validation_method"
VALIDATION_AUTOMATIC: Final = "automatic"  # dns-persist-01 when the CA offers it
VALIDATION_DNS01: Final = "dns_01"  # dns-01 only
VALIDATION_METHODS: Final = (VALIDATION_AUTOMATIC, VALIDATION_DNS01)

LETSENCRYPT: Final = "letsencrypt"
LETSENCRYPT_STAGING: Final = "letsencrypt_staging"
CUSTOM_CA: Final = "custom"
ACME_DIRECTORIES: Final = {
    LETSENCRYPT: "https://acme-v02.api.letsencrypt.org/directory",
    LETSENCRYPT_STAGING: "https://acme-staging-v02.api.letsencrypt.org/directory",
}


def directory_url_for(choice: str) -> str:
    """The directory URL for a CA choice (a known CA's key or a URL)."""
    return ACME_DIRECTORIES.get(choice, choice)


EVENT_CERTIFICATE_RENEWED: Final = f"{DOMAIN}_certificate_renewed"
SERVICE_RENEW_CERTIFICATE: Final = "renew_certificate"
ATTR_FORCE: Final = "force"

# Certificate monitoring (entry options).
CONF_ENDPOINTS: Final = "endpoints"
CONF_EXPIRY_WARNING_DAYS: Final = "expiry_warning_days"
DEFAULT_EXPIRY_WARNING_DAYS: Final = 14
MIN_EXPIRY_WARNING_DAYS: Final = 1
MAX_EXPIRY_WARNING_DAYS: Final = 90
MAX_ENDPOINTS: Final = 50
LOCAL_CHECK_INTERVAL: Final = timedelta(hours=1)
MTIME_POLL_INTERVAL: Final = timedelta(minutes=1)
ENDPOINT_CHECK_INTERVAL: Final = timedelta(hours=6)
ENDPOINT_CONCURRENCY: Final = 10

# Security checklist.
CONF_DISABLED_CHECKS: Final = "disabled_checks"
SERVICE_RUN_SECURITY_CHECKS: Final = "run_security_checks"

# Remote-access check.
SERVICE_CHECK_REMOTE_ACCESS: Final = "check_remote_access"

# Serving HTTPS behind a proxy add-on (entry option): the add-on's slug to
# restart after every renewal.
CONF_PROXY_ADDON: Final = "proxy_addon"
