"""dns-persist-01 records: format, read, judge, publish, and the client's choice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AcmeClient,
    Challenge,
    Directory,
    PersistLookupError,
    PersistNote,
    PersistOffer,
    PersistRecord,
    PersistRecordConflictError,
    PersistRefusal,
    PersistState,
    PersistValidation,
)
from custom_components.secure_remote_access.protocol.acme.persist import (
    judge,
    offer_for_order,
    publish_persist_record,
)
from tests.fakes import certs

from .scripted import (
    NAME,
    RecordingSolver,
    Reply,
    ScriptedAcme,
    Visible,
    Zones,
    authz,
    cert_reply,
    dns01,
    new_order_reply,
    order,
)

ACCOUNT = "https://ca.example/acct/1"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
WANTED = PersistOffer(("letsencrypt.org",), ACCOUNT)
WANTED_TXT = f"letsencrypt.org; accounturi={ACCOUNT}"
DIRECTORY = Directory("https://ca/nonce", "https://ca/acct", "https://ca/order")


def test_record_round_trip() -> None:
    """Written in the draft's order; read back the same."""
    record = PersistRecord("letsencrypt.org", ACCOUNT, wildcard=True, persist_until=NOW)
    text = record.to_txt()
    assert text == (
        f"letsencrypt.org; accounturi={ACCOUNT}; policy=wildcard; "
        f"persistUntil={int(NOW.timestamp())}"
    )
    assert PersistRecord.parse(text) == record


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Tags are case-insensitive, whitespace around parts is ignored; the
        # issuer is kept as written (CAs compare it exactly).
        (
            f"  LetsEncrypt.org ;AccountURI={ACCOUNT} ;\tPOLICY=Wildcard",
            PersistRecord("LetsEncrypt.org", ACCOUNT, wildcard=True),
        ),
        # An unknown policy value is as if there were none.
        (
            f"ca.example; accounturi={ACCOUNT}; policy=x",
            PersistRecord("ca.example", ACCOUNT),
        ),
        ("", None),
        ("gfj9Xq-Rpk0aDF5LvXr1Z8K2N8tWlbdtTzP9bB0Y2qs", None),  # a dns-01 value
        ("ca.example", None),  # no accounturi
        ("ca.example; accounturi=", None),
        (f"ca.example; accounturi={ACCOUNT}; accounturi={ACCOUNT}", None),
        (f"ca.example; accounturi={ACCOUNT};", None),  # trailing semicolon
        (f"ca.example; accounturi={ACCOUNT}; persistUntil=soon", None),
        (f"ca.example; accounturi={ACCOUNT}; persistUntil=99999999999999999999", None),
        ("ca.example; accounturi=https://a b", None),  # a space in a value
        ("ca example; accounturi=x", None),
        (f"; accounturi={ACCOUNT}", None),
        ("<html><body>502</body></html>", None),
    ],
)
def test_parse(text: str, expected: PersistRecord | None) -> None:
    """Only well-formed persist records are records."""
    assert PersistRecord.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "strict", "owner"),
    [
        # Pasted zone-file style: quoted, or split into strings. A CA reads the
        # quotes as part of the value (no valid issuer), but whose it is shows.
        (f'"letsencrypt.org; accounturi={ACCOUNT}"', False, ACCOUNT),
        (f'"letsencrypt.org; " "accounturi={ACCOUNT}"', False, ACCOUNT),
        # Tabs and the case of tags are the syntax's own freedom.
        (f"letsencrypt.org;\taccounturi={ACCOUNT}\t", True, ACCOUNT),
        (f"letsencrypt.org; AccountURI={ACCOUNT}; POLICY=WILDCARD", True, ACCOUNT),
        # Pebble and Boulder reject a trailing ";" or an empty parameter.
        (f"letsencrypt.org; accounturi={ACCOUNT};", False, ACCOUNT),
        (f"letsencrypt.org;; accounturi={ACCOUNT}", False, ACCOUNT),
        # Unknown tags are ignored (forward compatibility).
        (f"letsencrypt.org; accounturi={ACCOUNT}; future=1", True, ACCOUNT),
        # Another tool's token, an empty value: nobody's record.
        ("gfj9Xq-Rpk0aDF5LvXr1Z8K2N8tWlbdtTzP9bB0Y2qs", False, None),
        ("", False, None),
        ('""', False, None),
        # RFC 8659 issuer-domain-name syntax.
        (f"-letsencrypt.org; accounturi={ACCOUNT}", False, ACCOUNT),
        (f"lets_encrypt.org; accounturi={ACCOUNT}", False, ACCOUNT),
        (f"letsencrypt..org; accounturi={ACCOUNT}", False, ACCOUNT),
        (f"xn--bcher-kva.example; accounturi={ACCOUNT}", True, ACCOUNT),
        (f"ca-1.example; accounturi={ACCOUNT}; persistUntil=+5", True, ACCOUNT),
    ],
)
def test_every_txt_shape(text: str, strict: bool, owner: str | None) -> None:
    """`parse` reads a value as a CA does; `read` finds whose record it is."""
    assert (PersistRecord.parse(text) is not None) is strict
    found = PersistRecord.read(text)
    assert (found.account_uri if found else None) == owner


@pytest.mark.parametrize(
    ("text", "state"),
    [
        # A record pasted with quotes names our account: rewritten, no conflict.
        (f'"letsencrypt.org; accounturi={ACCOUNT}"', PersistState.OUTDATED),
        (f"letsencrypt.org; accounturi={ACCOUNT};", PersistState.OUTDATED),
        ('"letsencrypt.org; accounturi=https://x/9"', PersistState.OTHER_ACCOUNT),
        # Any issuer the CA lists is current, whatever the list's order.
        (f"second.example; accounturi={ACCOUNT}", PersistState.CURRENT),
        (f"LetsEncrypt.org; accounturi={ACCOUNT}", PersistState.OUTDATED),
        (f"renamed.example; accounturi={ACCOUNT}", PersistState.OUTDATED),
    ],
)
def test_judge_what_people_and_cas_do(text: str, state: PersistState) -> None:
    """Pasted records, two issuers in any order, a renamed issuer."""
    offer = PersistOffer(("letsencrypt.org", "second.example"), ACCOUNT)
    assert judge((text,), offer, {ACCOUNT}, NOW)[0] is state


@pytest.mark.parametrize("key", ["issuer-domain-names", "issuerDomainNames"])
def test_challenge_in_both_spellings(key: str) -> None:
    """draft-01 and draft-02 name the issuer list differently."""
    challenge = Challenge.from_json(
        {"type": "dns-persist-01", "url": "u", "status": "pending", key: ["a.example"]}
    )
    assert challenge.issuer_domain_names == ("a.example",)
    offer, note = offer_for_order([challenge], ["x"], ACCOUNT, DIRECTORY)
    assert note is None
    assert offer is not None
    assert offer.issuers == ("a.example",)


def test_directory_meta_of_draft_02() -> None:
    """The directory's issuer list stands in for a challenge without one; a
    hashed account URI is a form that is never written."""
    directory = Directory.from_json(
        {
            "newNonce": "n",
            "newAccount": "a",
            "newOrder": "o",
            "meta": {
                "issuer-domain-names": ["meta.example"],
                "accountHashPrefix": "https://ca.example/account-hash/",
            },
        }
    )
    assert directory.issuer_domain_names == ("meta.example",)
    assert directory.account_hash_prefix == "https://ca.example/account-hash/"
    bare = _offer(())
    assert offer_for_order([bare], ["x"], ACCOUNT, directory) == (
        None,
        PersistNote.RECORD_FORM_UNSUPPORTED,
    )
    plain = Directory("n", "a", "o", issuer_domain_names=("meta.example",))
    offer, _ = offer_for_order([bare], ["x"], ACCOUNT, plain)
    assert offer is not None
    assert offer.issuers == ("meta.example",)
    hashed = Challenge(
        "dns-persist-01", "u", "pending", ("a.example",), account_hash_prefix="h/"
    )
    assert offer_for_order([hashed], ["x"], ACCOUNT, DIRECTORY)[1] is (
        PersistNote.RECORD_FORM_UNSUPPORTED
    )
    eleven = _offer(tuple(f"ca{number}.example" for number in range(11)))
    assert offer_for_order([eleven], ["x"], ACCOUNT, DIRECTORY)[1] is (
        PersistNote.NO_ISSUER_DOMAIN_NAMES
    )


def test_refusal_memory() -> None:
    """30 days, the same account and challenge; kept in a store and read back."""
    refusal = PersistRefusal(ACCOUNT, "offer", "unauthorized", "No TXT", NOW)
    assert refusal.applies(ACCOUNT, "offer", NOW + timedelta(days=29))
    assert not refusal.applies(ACCOUNT, "offer", NOW + timedelta(days=30))
    assert not refusal.applies("https://ca.example/acct/2", "offer", NOW)
    assert not refusal.applies(ACCOUNT, "changed", NOW)
    assert refusal.describe() == (
        "dns-persist-01 refused by the CA: No TXT (unauthorized); used dns-01"
    )
    assert PersistRefusal.from_json(refusal.to_json()) == refusal
    assert PersistRefusal.from_json({"refused_at": "soon"}) is None
    assert PersistRefusal.from_json(None) is None
    naive = {**refusal.to_json(), "refused_at": "2026-12-01T00:00:00"}
    loaded = PersistRefusal.from_json(naive)
    assert loaded is not None
    assert loaded.refused_at == NOW
    bare = PersistRefusal.from_error(ACCOUNT, "o", ValueError("boom"), NOW)
    assert bare.describe() == "dns-persist-01 refused by the CA: boom; used dns-01"
    # A failed lookup is no refusal, also when an earlier version stored one.
    lookup = PersistRefusal(ACCOUNT, "offer", "dns", "SERVFAIL", NOW)
    assert not lookup.lasting
    assert lookup.note == "persist_lookup_failed"
    assert not lookup.applies(ACCOUNT, "offer", NOW)


@pytest.mark.parametrize(
    ("texts", "state"),
    [
        ((), PersistState.ABSENT),
        (("some-dns-01-value",), PersistState.ABSENT),
        ((WANTED_TXT,), PersistState.CURRENT),
        # Another value beside ours does not matter.
        (("junk", WANTED_TXT), PersistState.CURRENT),
        (
            (f"letsencrypt.org; accounturi={ACCOUNT}; persistUntil=1",),
            PersistState.EXPIRED,
        ),
        (("old-ca.example; accounturi=https://old/acct/7",), PersistState.OUTDATED),
        (
            ("letsencrypt.org; accounturi=https://ca.example/acct/99",),
            PersistState.OTHER_ACCOUNT,
        ),
        (
            ("other-ca.example; accounturi=https://x/acct/5",),
            PersistState.OTHER_ACCOUNT,
        ),
    ],
)
def test_judge(texts: tuple[str, ...], state: PersistState) -> None:
    """What the name holds, seen from our accounts (this one and an old one)."""
    found, _record = judge(texts, WANTED, {ACCOUNT, "https://old/acct/7"}, NOW)
    assert found is state


@pytest.mark.parametrize(
    "issuer", ["LETSENCRYPT.ORG", "letsencrypt.org.", "LetsEncrypt.org"]
)
def test_judge_issuer_must_match_exactly(issuer: str) -> None:
    """A CA compares the issuer byte for byte: another spelling is rewritten."""
    record = f"{issuer}; accounturi={ACCOUNT}"
    assert judge((record,), WANTED, {ACCOUNT}, NOW)[0] is PersistState.OUTDATED


def test_judge_wildcard_needs_the_policy() -> None:
    """A record without policy=wildcard is outdated for a wildcard certificate."""
    wildcard = PersistOffer(("letsencrypt.org",), ACCOUNT, wildcard=True)
    assert judge((WANTED_TXT,), wildcard, {ACCOUNT}, NOW)[0] is PersistState.OUTDATED
    assert (
        judge((wildcard.record().to_txt(),), WANTED, {ACCOUNT}, NOW)[0]
        is PersistState.CURRENT
    )
    future = PersistRecord(
        "letsencrypt.org", ACCOUNT, persist_until=NOW + timedelta(days=1)
    )
    assert judge((future.to_txt(),), WANTED, {ACCOUNT}, NOW)[0] is PersistState.CURRENT


def _offer(issuers: tuple[str, ...], account: str | None = None) -> Challenge:
    return Challenge(
        "dns-persist-01",
        "https://ca.example/chall/1",
        "pending",
        issuer_domain_names=issuers,
        account_uri=account,
    )


def test_offer_for_order() -> None:
    """The issuers every challenge names; the CA's account URL; wildcard policy."""
    offer, note = offer_for_order(
        [_offer(("b.example", "a.example")), _offer(("a.example",), ACCOUNT)],
        ["x.duckdns.org", "*.x.duckdns.org"],
        "https://kid",
        DIRECTORY,
    )
    assert note is None
    assert offer is not None
    assert offer.issuers == ("a.example",)
    assert offer.record() == PersistRecord("a.example", ACCOUNT, wildcard=True)
    offer, _ = offer_for_order(
        [_offer(("a.example", "b.example"))], ["x"], "https://kid", DIRECTORY
    )
    assert offer is not None
    assert offer.issuers == ("a.example", "b.example")
    assert offer.record() == PersistRecord("a.example", "https://kid")
    assert offer_for_order([_offer(("a.example",)), None], ["x"], "k", DIRECTORY) == (
        None,
        PersistNote.NOT_OFFERED,
    )
    assert offer_for_order([_offer(())], ["x"], "k", DIRECTORY) == (
        None,
        PersistNote.NO_ISSUER_DOMAIN_NAMES,
    )
    assert offer_for_order(
        [_offer(("a.example",)), _offer(("b.example",))], ["x"], "k", DIRECTORY
    ) == (None, PersistNote.NO_ISSUER_DOMAIN_NAMES)


async def test_publish_writes_only_where_missing() -> None:
    """One look per zone; a zone with the record costs no write and no wait."""
    zones = Zones({"b.duckdns.org": WANTED_TXT})
    note = await publish_persist_record(
        PersistValidation(zones, zones),
        ["a.duckdns.org", "*.a.duckdns.org", "x.a.duckdns.org", "b.duckdns.org"],
        WANTED,
        deadline=1e9,
        now=NOW,
    )
    assert note is PersistNote.RECORD_SET
    assert zones.lookups == [
        "_validation-persist.a.duckdns.org",
        "_validation-persist.b.duckdns.org",
    ]
    assert zones.writes == [("a.duckdns.org", WANTED_TXT)]
    assert zones.waits == ["_validation-persist.a.duckdns.org"]
    again = await publish_persist_record(
        PersistValidation(zones, zones), ["a.duckdns.org"], WANTED, 1e9, NOW
    )
    assert again is PersistNote.RECORD_REUSED
    assert len(zones.writes) == 1


async def test_publish_never_overwrites_another_account() -> None:
    """A conflict in any zone is found before anything is written anywhere."""
    foreign = "letsencrypt.org; accounturi=https://ca.example/acct/99"
    zones = Zones({"b.duckdns.org": foreign})
    with pytest.raises(PersistRecordConflictError) as caught:
        await publish_persist_record(
            PersistValidation(zones, zones),
            ["a.duckdns.org", "b.duckdns.org"],
            WANTED,
            1e9,
            NOW,
        )
    assert caught.value.record == "_validation-persist.b.duckdns.org"
    assert caught.value.account_uri == "https://ca.example/acct/99"
    assert zones.writes == []
    assert zones.values["b.duckdns.org"] == foreign


async def test_publish_never_writes_blind() -> None:
    """No server answered the look-up: nothing is written, the reason is named."""

    class Silent(Zones):
        async def query_txt(self, name: str) -> tuple[str, ...] | None:
            self.lookups.append(name)
            return None

    zones = Silent({})
    with pytest.raises(
        PersistLookupError, match=r"_validation-persist\.a\.duckdns\.org"
    ):
        await publish_persist_record(
            PersistValidation(zones, zones), ["a.duckdns.org"], WANTED, 1e9, NOW
        )
    assert zones.writes == []


async def test_publish_reports_what_it_replaced() -> None:
    """Expired beats outdated in the note; both are rewritten."""
    expired = f"letsencrypt.org; accounturi={ACCOUNT}; persistUntil=1"
    zones = Zones(
        {
            "a.duckdns.org": expired,
            "b.duckdns.org": "old.example; accounturi=https://o/1",
        }
    )
    note = await publish_persist_record(
        PersistValidation(zones, zones, frozenset({"https://o/1"})),
        ["a.duckdns.org", "b.duckdns.org"],
        WANTED,
        1e9,
        NOW,
    )
    assert note is PersistNote.EXPIRED_RECORD_REPLACED
    assert {zone for zone, _value in zones.writes} == {"a.duckdns.org", "b.duckdns.org"}


# ------------------------------------------------------------- the client


def _persist(
    ca: ScriptedAcme, issuers: list[str], status: str = "pending"
) -> dict[str, object]:
    return {
        "type": "dns-persist-01",
        "url": ca.url("chall/2"),
        "status": status,
        "issuer-domain-names": issuers,
        "accounturi": ca.url("acct/1"),
    }


def _script_issuance(ca: ScriptedAcme, *challenges: dict[str, object]) -> None:
    ca.on("new-order", new_order_reply(ca))
    ca.on(
        "authz/1",
        Reply(json=authz(ca, "pending", *challenges)),
        Reply(json=authz(ca, "valid", *challenges)),
    )
    ca.on("chall/1", Reply(json=dns01(ca, "processing")))
    ca.on("chall/2", Reply(json=_persist(ca, ["ca.example"], "processing")))
    ca.on("order/1", Reply(json=order(ca, "ready")))
    ca.on(
        "order/1/finalize",
        Reply(json=order(ca, "valid", certificate=ca.url("cert/1"))),
    )
    ca.on("cert/1", cert_reply(certs.issue([NAME]).fullchain_pem))


async def test_client_answers_persist_without_dns01(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Offered with an issuer: the record is published, no dns-01 value is set."""
    _script_issuance(ca, dns01(ca), _persist(ca, ["ca.example"]))
    zones = Zones({})
    solver = RecordingSolver()
    issued = await make().issue_certificate(
        [NAME], solver, Visible(), persist=PersistValidation(zones, zones)
    )
    assert issued.validation_method == "dns-persist-01"
    assert issued.validation_note == "record_set"
    assert zones.writes == [(NAME, f"ca.example; accounturi={ca.url('acct/1')}")]
    assert solver.history == []
    assert len(ca.posted("chall/2")) == 1
    assert ca.posted("chall/1") == []


async def test_client_falls_back_without_issuer_names(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Offered without issuer-domain-names: dns-01, and the reason is kept."""
    _script_issuance(ca, dns01(ca), _persist(ca, []))
    zones = Zones({})
    solver = RecordingSolver()
    issued = await make().issue_certificate(
        [NAME], solver, Visible(), persist=PersistValidation(zones, zones)
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "no_issuer_domain_names"
    assert zones.writes == []
    assert [identifier for identifier, _ in solver.history] == [NAME]
    assert ca.posted("chall/2") == []


async def test_client_with_valid_authorizations_validates_nothing(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """Authorizations the CA still holds: no method is needed."""
    _script_issuance(ca, dns01(ca, "valid"))
    ca.on("authz/1", Reply(json=authz(ca, "valid", dns01(ca, "valid"))))
    zones = Zones({})
    issued = await make().issue_certificate(
        [NAME], RecordingSolver(), Visible(), persist=PersistValidation(zones, zones)
    )
    assert issued.validation_method == "reused_authorization"
    assert zones.lookups == []


@pytest.mark.parametrize("garbage", ["ca.example", [None], {"a": 1}, [1, "x"]])
async def test_client_garbage_issuer_names_fall_back_to_dns01(
    ca: ScriptedAcme, make: Callable[..., AcmeClient], garbage: object
) -> None:
    """An unreadable issuer-domain-names never breaks the order: dns-01."""
    offer = {**_persist(ca, []), "issuer-domain-names": garbage}
    _script_issuance(ca, dns01(ca), offer)
    zones = Zones({})
    issued = await make().issue_certificate(
        [NAME], RecordingSolver(), Visible(), persist=PersistValidation(zones, zones)
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "no_issuer_domain_names"


async def test_client_name_the_solver_cannot_place_uses_dns01(
    ca: ScriptedAcme, make: Callable[..., AcmeClient]
) -> None:
    """A name without a persist delegation: dns-01 for the whole order."""

    class Undelegated(Zones):
        def zone_of(self, identifier: str) -> str:
            raise ValueError(identifier)

    _script_issuance(ca, dns01(ca), _persist(ca, ["ca.example"]))
    zones = Undelegated({})
    issued = await make().issue_certificate(
        [NAME], RecordingSolver(), Visible(), persist=PersistValidation(zones, zones)
    )
    assert issued.validation_method == "dns-01"
    assert issued.validation_note == "not_delegated"
    assert zones.lookups == []
