"""When a certificate fits the settings: `misfits`, the one definition."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.secure_remote_access.certificate_settings import (
    CertificateFacts,
    CertificateSettings,
    OrderedWith,
    misfits,
)
from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_EMAIL,
    CONF_EXTRA_NAMES,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_VALIDATION_METHOD,
    CONF_WILDCARD,
    VALIDATION_DNS01,
)
from custom_components.secure_remote_access.protocol.schedule import RenewalReason
from custom_components.secure_remote_access.protocol.x509 import inspect_pem
from tests.fakes import certs

NAME = "myhome.duckdns.org"
CA = "https://ca.example/directory"
ORDERED_HERE = OrderedWith(CA, None)


def _settings(**options: Any) -> CertificateSettings:
    return CertificateSettings.parse(
        [NAME],
        {
            CONF_ACME_DIRECTORY: CA,
            CONF_CERTIFICATE_PATH: "/ssl/fullchain.pem",
            CONF_PRIVATE_KEY_PATH: "/ssl/privkey.pem",
            **options,
        },
    )


def _facts(
    names: list[str],
    key_type: certs.KeyType = certs.KeyType.EC_P256,
    ordered_with: OrderedWith | None = ORDERED_HERE,
) -> CertificateFacts:
    """The facts of a real certificate with these names and key."""
    pair = certs.issue(names, key=certs.generate_key(key_type, slot=31))
    return CertificateFacts.of(inspect_pem(pair.fullchain_pem), ordered_with)


@pytest.mark.parametrize(
    ("facts", "options", "expected"),
    [
        # Fits: names in another case and order, nothing else asked for.
        (_facts(["MyHome.DuckDNS.org"]), {}, ()),
        # What the certificate does not show never makes it unfit.
        (
            _facts([NAME]),
            {CONF_EMAIL: "me@example.org", CONF_VALIDATION_METHOD: VALIDATION_DNS01},
            (),
        ),
        # A name missing, a name too many (wildcard or own domain turned off).
        (_facts([NAME]), {CONF_WILDCARD: True}, (RenewalReason.NAMES_CHANGED,)),
        (_facts([NAME, f"*.{NAME}"]), {}, (RenewalReason.NAMES_CHANGED,)),
        (
            _facts([NAME, "home.example.com"]),
            {CONF_EXTRA_NAMES: ["home.example.com"]},
            (),
        ),
        # Another key, or one this integration never makes (Ed25519).
        (
            _facts([NAME]),
            {CONF_KEY_TYPE: "ec-p384"},
            (RenewalReason.KEY_TYPE_CHANGED,),
        ),
        (_facts([NAME], certs.KeyType.RSA_2048), {CONF_KEY_TYPE: "rsa-2048"}, ()),
        (_facts([NAME], certs.KeyType.ED25519), {}, (RenewalReason.KEY_TYPE_CHANGED,)),
        # Another CA and another profile, as recorded when ordered.
        (
            _facts([NAME], ordered_with=OrderedWith("https://old.example/dir", None)),
            {CONF_PROFILE: "shortlived"},
            (RenewalReason.CA_CHANGED, RenewalReason.PROFILE_CHANGED),
        ),
        # Not ordered by this entry (nothing recorded): CA and profile unknown.
        (_facts([NAME], ordered_with=None), {CONF_PROFILE: "shortlived"}, ()),
        # Everything at once, in a fixed order (the first is the renewal reason).
        (
            _facts([NAME], certs.KeyType.RSA_2048, OrderedWith("https://x/", "p")),
            {CONF_WILDCARD: True},
            (
                RenewalReason.NAMES_CHANGED,
                RenewalReason.KEY_TYPE_CHANGED,
                RenewalReason.CA_CHANGED,
                RenewalReason.PROFILE_CHANGED,
            ),
        ),
    ],
)
def test_misfits(
    facts: CertificateFacts,
    options: dict[str, Any],
    expected: tuple[RenewalReason, ...],
) -> None:
    """Names, key type, CA and profile decide; nothing else does."""
    assert misfits(_settings(**options), facts) == expected
