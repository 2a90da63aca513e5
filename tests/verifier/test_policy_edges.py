"""Policies and the trust state at their edges (DESIGN §3, §4): the scenario defaults a gate relies
on, every field of a TOML custom policy refused with a UsageError naming it, staleness at exactly
its limit, and the trust state's checks and snapshots with injected instants.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from suishenma import (
    IssuerEntry,
    ListError,
    Reason,
    SigningKey,
    StatusList,
    TrustList,
    UsageError,
    sign_status_list,
    sign_trust_list,
)
from verifier.policy import BUILTIN, DAY, HOUR, IDENTITY_FIELDS, Policy, policy_from_toml, resolve_policy
from verifier.trust_state import TRUST, HeldList, TrustState, as_list_error, issuer_of, status_name
from verifier.verdict import MESSAGES, Decision, VerdictReason

NOW = 1_790_000_000


# --- built-in scenarios ------------------------------------------------------------------------------


def test_builtin_scenarios_hold_their_documented_rules() -> None:
    """A changed default opens a gate that the README says is closed."""
    assert (HOUR, DAY) == (3600, 86400)
    venue, hospital, transit = BUILTIN["venue"], BUILTIN["hospital"], BUILTIN["transit"]
    assert list(BUILTIN) == ["venue", "hospital", "transit"]
    assert venue == Policy(
        "venue", {"green": Decision.ALLOW, "yellow": Decision.DENY, "red": Decision.DENY}, max_list_age_s=259200
    )
    assert (venue.on_invalid, venue.required_claims, venue.max_code_age_s, venue.skew_s) == (
        Decision.DENY,
        (),
        None,
        10,
    )
    assert (venue.replay, venue.status_list, venue.on_stale, venue.messages) == ("off", "offline", Decision.DENY, {})
    assert dict(hospital.statuses) == {"green": Decision.ALLOW, "yellow": Decision.REFER, "red": Decision.REFER}
    assert (hospital.on_invalid, hospital.required_claims, hospital.max_list_age_s, hospital.on_stale) == (
        Decision.REFER,
        ("masked_name", "masked_id"),
        604800,
        Decision.REFER,
    )
    assert (hospital.max_code_age_s, hospital.skew_s, hospital.replay, hospital.status_list) == (
        None,
        10,
        "off",
        "offline",
    )
    assert dict(transit.statuses) == dict(venue.statuses) and transit.on_invalid is Decision.DENY
    assert (transit.max_code_age_s, transit.skew_s, transit.replay, transit.status_list) == (120, 5, "once", "always")
    assert (transit.max_list_age_s, transit.on_stale, transit.required_claims) == (21600, Decision.DENY, ())


def test_policy_defaults() -> None:
    p = Policy("p", {})
    assert (p.on_invalid, p.required_claims, p.max_code_age_s, p.skew_s, p.replay) == (
        Decision.DENY,
        (),
        None,
        10,
        "off",
    )
    assert (p.status_list, p.max_list_age_s, p.on_stale, p.messages) == ("offline", 3 * 86400, Decision.DENY, {})


def test_resolve_policy_builtin_or_toml() -> None:
    assert resolve_policy("transit") is BUILTIN["transit"]
    assert resolve_policy('extends = "transit"\nname = "metro"') == Policy(
        **{**BUILTIN["transit"].__dict__, "name": "metro"}
    )
    with pytest.raises(UsageError, match="unknown policy keys: airport"):
        resolve_policy("airport = 1")
    with pytest.raises(UsageError) as exc:
        resolve_policy("[statuses]\n")  # TOML without "=": still a policy, not a scenario name
    assert exc.value.detail == "policy value: statuses must give a decision for green, yellow and red"


def test_misspelt_scenario_is_named_with_a_hint() -> None:
    """A typo must not start a gate on some other rule: it is refused, with the likely name."""
    with pytest.raises(UsageError) as exc:
        resolve_policy("hospitl")
    assert exc.value.detail == (
        "unknown scenario 'hospitl' (did you mean 'hospital'?): use venue, hospital, transit, or a policy TOML file"
    )
    with pytest.raises(UsageError) as exc:
        resolve_policy("zzz")
    assert exc.value.detail == "unknown scenario 'zzz': use venue, hospital, transit, or a policy TOML file"


# --- staleness and messages ------------------------------------------------------------------------


def _held(checked_at: int, expires_at: int, name: str = TRUST, version: int = 1) -> HeldList:
    return HeldList(name, version, b"body", "etag", checked_at, expires_at)


def test_list_is_stale_from_its_expiry_instant() -> None:
    p = Policy("p", {}, max_list_age_s=100)
    assert not p.is_stale(_held(NOW, NOW + 1), NOW)
    assert p.is_stale(_held(NOW, NOW), NOW)


def test_list_unconfirmed_for_longer_than_the_limit_is_stale() -> None:
    """Exactly ``max_list_age_s`` since the issuer confirmed it is still fresh; one second more is not."""
    p = Policy("p", {}, max_list_age_s=100)
    assert not p.is_stale(_held(NOW - 100, NOW + DAY), NOW)
    assert p.is_stale(_held(NOW - 101, NOW + DAY), NOW)


def test_custom_message_replaces_only_its_reason() -> None:
    p = Policy("p", {}, messages={VerdictReason.STATUS_RED: ("请到发热门诊", "Fever clinic")})
    assert p.message(VerdictReason.STATUS_RED) == ("请到发热门诊", "Fever clinic")
    assert p.message(VerdictReason.EXPIRED) == MESSAGES[VerdictReason.EXPIRED]


# --- TOML custom policies ----------------------------------------------------------------------------


def _refused(text: str) -> str:
    with pytest.raises(UsageError) as exc:
        policy_from_toml(text)
    assert exc.value.reason is Reason.USAGE
    return exc.value.detail


def test_toml_policy_extends_venue_by_default() -> None:
    p = policy_from_toml('name = "museum"')
    assert p == Policy(**{**BUILTIN["venue"].__dict__, "name": "museum"})


def test_toml_policy_overrides_every_field() -> None:
    p = policy_from_toml(
        'extends = "hospital"\nname = "clinic"\non_invalid = "deny"\non_stale = "Allow"\n'
        'required_claims = ["masked_id"]\nmax_code_age_s = 0\nskew_s = 0\nmax_list_age_s = 60\n'
        'replay = "once"\nstatus_list = "always"\n'
        '[statuses]\ngreen = "allow"\nyellow = "REFER"\nred = "deny"\n'
        '[messages]\nstatus_red = ["请到发热门诊", "Please go to the fever clinic"]\n'
    )
    assert p == Policy(
        "clinic",
        {"green": Decision.ALLOW, "yellow": Decision.REFER, "red": Decision.DENY},
        on_invalid=Decision.DENY,
        required_claims=("masked_id",),
        max_code_age_s=0,
        skew_s=0,
        replay="once",
        status_list="always",
        max_list_age_s=60,
        on_stale=Decision.ALLOW,
        messages={VerdictReason.STATUS_RED: ("请到发热门诊", "Please go to the fever clinic")},
    )
    assert policy_from_toml('extends = "hospital"\nrequired_claims = []').required_claims == ()
    assert policy_from_toml('extends = "venue"\nrequired_claims = ["masked_name", "masked_id"]').required_claims == (
        IDENTITY_FIELDS
    )
    assert policy_from_toml("replay = 'off'\nstatus_list = 'offline'").replay == "off"


def test_toml_policy_extends_names_the_unknown_scenario() -> None:
    assert (
        _refused('extends = "airport"')
        == "policy extends unknown scenario 'airport'; use one of venue, hospital, transit"
    )


def test_toml_policy_unknown_keys_are_all_named() -> None:
    """A misspelt key would otherwise leave the built-in rule silently in force."""
    assert _refused("skew = 1\ncolour = 2\nskew_s = 3") == "unknown policy keys: colour, skew"


def test_toml_policy_invalid_toml() -> None:
    assert _refused("x =").startswith("policy TOML: ")


DECISIONS = "ALLOW, DENY, REFER"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("skew_s = -1", "skew_s must be a non-negative integer"),
        ("max_code_age_s = -1", "max_code_age_s must be a non-negative integer"),
        ("max_list_age_s = -1", "max_list_age_s must be a non-negative integer"),
        ("max_list_age_s = '3600'", "max_list_age_s must be a non-negative integer"),
        ("max_code_age_s = 1.5", "max_code_age_s must be a non-negative integer"),
        # a TOML boolean is not a duration (True would be one second)
        ("skew_s = true", "skew_s must be a non-negative integer"),
        ("max_code_age_s = false", "max_code_age_s must be a non-negative integer"),
        ("max_list_age_s = true", "max_list_age_s must be a non-negative integer"),
        ('replay = "twice"', "replay must be 'off' or 'once'"),
        ('replay = "OFF"', "replay must be 'off' or 'once'"),
        ('status_list = "never"', "status_list must be 'offline' or 'always'"),
        ('required_claims = ["name"]', "required_claims must be a list among masked_name, masked_id"),
        ('required_claims = "masked_name"', "required_claims must be a list among masked_name, masked_id"),
        ("required_claims = 5", "required_claims must be a list among masked_name, masked_id"),
        ("[statuses]\ngreen = 'ALLOW'", "statuses must give a decision for green, yellow and red"),
        (
            "[statuses]\ngreen = 'ALLOW'\nyellow = 'DENY'\nred = 'DENY'\nblue = 'ALLOW'",
            "statuses must give a decision for green, yellow and red",
        ),
        ("statuses = 1", "statuses must be a table"),
        ("statuses = ['ALLOW']", "statuses must be a table"),
        (
            "[statuses]\ngreen = 'ALLOW'\nyellow = 'DENY'\nred = 'MAYBE'",
            f"statuses.red must be one of {DECISIONS}, not 'MAYBE'",
        ),
        ("[statuses]\ngreen = 1\nyellow = 'DENY'\nred = 'DENY'", f"statuses.green must be one of {DECISIONS}, not 1"),
        ('on_invalid = "maybe"', f"on_invalid must be one of {DECISIONS}, not 'maybe'"),
        ('on_stale = "open"', f"on_stale must be one of {DECISIONS}, not 'open'"),
        ("on_stale = true", f"on_stale must be one of {DECISIONS}, not True"),
        ("messages = 3", "messages must be a table"),
        ("[messages]\nnope = ['a', 'b']", "messages.nope is not a verdict reason"),
        ("[messages]\nSTATUS_RED = ['a', 'b']", "messages.STATUS_RED is not a verdict reason"),
        # a two-character string would have become a pair; one text raised IndexError
        ('[messages]\nstatus_red = "ab"', "messages.status_red must be a pair of texts: [Chinese, English]"),
        ("[messages]\nstatus_red = ['only one']", "messages.status_red must be a pair of texts: [Chinese, English]"),
        ("[messages]\nstatus_red = ['a', 'b', 'c']", "messages.status_red must be a pair of texts: [Chinese, English]"),
        ("[messages]\nstatus_red = ['a', 2]", "messages.status_red must be a pair of texts: [Chinese, English]"),
        ("name = 5", "name must be a non-empty string"),
        ('name = ""', "name must be a non-empty string"),
    ],
)
def test_toml_policy_invalid_value_is_refused_naming_the_field(text: str, detail: str) -> None:
    """A custom policy with a bad value must never start a gate on a silently different rule."""
    assert _refused(text) == f"policy value: {detail}"


# --- trust state -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {name: SigningKey.generate() for name in ("root", "SH", "BJ")}


def _trust(keys: dict[str, SigningKey], version: int = 1, issuers: tuple[str, ...] = ("SH", "BJ"), **kw: Any) -> bytes:
    entries = [IssuerEntry(keys[i].public(), i, NOW - DAY, NOW + 365 * DAY) for i in issuers]
    return sign_trust_list(entries, keys["root"], version=version, now=kw.get("now", NOW), ttl=kw.get("ttl", DAY))


def _status(
    keys: dict[str, SigningKey], issuer: str = "SH", version: int = 1, *, signer: str | None = None, now: int = NOW
) -> bytes:
    return sign_status_list(
        StatusList(16),
        keys[signer or issuer],
        uri=f"/status/{issuer}",
        issuer=issuer,
        version=version,
        now=now,
        valid_for=DAY,
        ttl=300,
    )


def _state(keys: dict[str, SigningKey]) -> TrustState:
    return TrustState(keys["root"].public())


def test_status_list_names_map_to_their_issuer() -> None:
    assert status_name("SH") == "status:SH" and issuer_of("status:SH") == "SH"
    assert issuer_of(status_name("status:X")) == "status:X"


def test_load_reverifies_cached_lists(keys: dict[str, SigningKey]) -> None:
    trust = HeldList(TRUST, 2, _trust(keys, 2), "t", NOW, NOW + DAY)
    sh = HeldList("status:SH", 3, _status(keys, "SH", 3), None, NOW, NOW + DAY)
    versions = {TRUST: 2, "status:SH": 3}
    state = _state(keys)
    assert state.load([sh, trust], versions, NOW) == []
    assert state.trust is not None and state.trust.version == 2 and state.status["SH"].version == 3
    assert state.held == {TRUST: trust, "status:SH": sh} and state.versions == versions
    state.adopt(None, {}, [HeldList("status:BJ", 9, b"", None, NOW, NOW + DAY)], {}, [])
    assert versions == {TRUST: 2, "status:SH": 3}  # the caller's dict is not the state's


def test_load_reports_what_no_longer_verifies(keys: dict[str, SigningKey]) -> None:
    """A cached list signed by a key the trust list does not give its issuer is dropped, not trusted."""
    trust = HeldList(TRUST, 1, _trust(keys), None, NOW, NOW + DAY)
    forged = HeldList("status:SH", 1, _status(keys, "SH", signer="BJ"), None, NOW, NOW + DAY)
    good = HeldList("status:BJ", 1, _status(keys, "BJ"), None, NOW, NOW + DAY)
    state = _state(keys)
    problems = state.load([trust, forged, good], {}, NOW)
    assert len(problems) == 1 and problems[0].startswith("cached status list of SH unusable: ")
    assert "SH" not in state.status and "status:SH" not in state.held and state.status["BJ"].issuer == "BJ"


def test_load_without_a_usable_trust_list_trusts_no_status_list(keys: dict[str, SigningKey]) -> None:
    expired = HeldList(TRUST, 1, _trust(keys, now=NOW - 2 * DAY), None, NOW, NOW)
    sh = HeldList("status:SH", 1, _status(keys), None, NOW, NOW + DAY)
    state = _state(keys)
    problems = state.load([expired, sh], {TRUST: 1}, NOW)
    assert len(problems) == 1 and problems[0].startswith("cached trust list unusable: ")
    assert state.trust is None and state.status == {} and state.held == {}
    assert _state(keys).load([sh], {}, NOW) == []  # no trust list at all: nothing to check it against


def test_trust_list_rollback_below_the_held_version_rejected(keys: dict[str, SigningKey]) -> None:
    state = _state(keys)
    state.versions = {TRUST: 3}
    with pytest.raises(ListError) as exc:
        state.check_trust_list(_trust(keys, 2), NOW)
    assert exc.value.reason is Reason.LIST_ROLLBACK and exc.value.detail == "version 2 < held 3"
    assert state.check_trust_list(_trust(keys, 3), NOW).version == 3
    with pytest.raises(ListError) as exc:
        state.check_trust_list(_trust(keys, 4, now=NOW - 2 * DAY), NOW)
    assert exc.value.reason is Reason.LIST_EXPIRED


def test_status_list_rollback_and_foreign_signer_rejected(keys: dict[str, SigningKey]) -> None:
    state = _state(keys)
    trust = state.check_trust_list(_trust(keys), NOW)
    state.versions = {"status:SH": 5, "status:BJ": 1}
    with pytest.raises(ListError) as exc:
        state.check_status_list("SH", _status(keys, "SH", 4), trust, NOW)
    assert exc.value.reason is Reason.LIST_ROLLBACK and exc.value.detail == "version 4 < held 5"
    assert state.check_status_list("SH", _status(keys, "SH", 5), trust, NOW).version == 5
    with pytest.raises(ListError) as exc:
        state.check_status_list("BJ", _status(keys, "BJ", 2, signer="SH"), trust, NOW)
    assert exc.value.reason is Reason.LIST_WRONG_SIGNER


def test_undecodable_list_costs_one_list_not_the_sync(caplog: pytest.LogCaptureFixture) -> None:
    """A decoder bug that network bytes find becomes a list error, logged with its traceback."""

    def broken() -> None:
        raise KeyError("x")

    with caplog.at_level(logging.ERROR, logger="verifier.trust_state"), pytest.raises(ListError) as exc:
        as_list_error(broken)
    assert exc.value.reason is Reason.LIST_MALFORMED and exc.value.detail == "undecodable: KeyError"
    assert [r.getMessage() for r in caplog.records] == ["list parser failed on untrusted bytes"]
    assert caplog.records[0].exc_info is not None


def test_our_own_list_errors_pass_through_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    def rollback() -> None:
        raise ListError(Reason.LIST_ROLLBACK, "version 1 < held 2")

    with caplog.at_level(logging.ERROR), pytest.raises(ListError) as exc:
        as_list_error(rollback)
    assert exc.value.reason is Reason.LIST_ROLLBACK and exc.value.detail == "version 1 < held 2"
    assert caplog.records == []
    assert as_list_error(lambda: 7) == 7


def _adopted(keys: dict[str, SigningKey]) -> tuple[TrustState, TrustList]:
    state = _state(keys)
    trust = state.check_trust_list(_trust(keys, 1), NOW)
    sh = state.check_status_list("SH", _status(keys, "SH"), trust, NOW)
    bj = state.check_status_list("BJ", _status(keys, "BJ"), trust, NOW)
    held = [_held(NOW, NOW + DAY, TRUST), _held(NOW, NOW + DAY, "status:SH"), _held(NOW, NOW + DAY, "status:BJ")]
    state.adopt(trust, {"SH": sh, "BJ": bj}, held, {}, [])
    return state, trust


def test_adopt_installs_checked_lists_and_remembers_versions(keys: dict[str, SigningKey]) -> None:
    state, trust = _adopted(keys)
    assert state.trust is trust and set(state.status) == {"SH", "BJ"}
    assert set(state.held) == {TRUST, "status:SH", "status:BJ"} and state.versions == dict.fromkeys(state.held, 1)
    state.adopt(None, {}, [_held(NOW, NOW + DAY, "status:SH", version=7)], {}, [])
    assert state.versions["status:SH"] == 7 and state.trust is trust and set(state.status) == {"SH", "BJ"}


def test_adopt_never_lowers_a_held_version(keys: dict[str, SigningKey]) -> None:
    """Versions outlive bodies: re-adopting an older list must not reopen the door to a rollback."""
    state, _ = _adopted(keys)
    state.versions[TRUST] = 5
    state.adopt(None, {}, [_held(NOW, NOW + DAY, TRUST, version=2)], {}, [])
    assert state.versions[TRUST] == 5 and state.held[TRUST].version == 2


def test_issuer_dropped_from_the_trust_list_loses_its_status_list(keys: dict[str, SigningKey]) -> None:
    state, _ = _adopted(keys)
    only_sh = state.check_trust_list(_trust(keys, 2, issuers=("SH",)), NOW)
    state.adopt(only_sh, {}, [], {}, ["status:BJ"])
    assert set(state.status) == {"SH"} and set(state.held) == {TRUST, "status:SH"} and state.trust is only_sh


def test_adopt_marks_confirmed_lists_fresh_only_forward(keys: dict[str, SigningKey]) -> None:
    state, _ = _adopted(keys)
    before = state.held[TRUST]
    state.adopt(None, {}, [], {TRUST: NOW + 50, "status:XX": NOW + 50}, [])
    assert state.held[TRUST] == HeldList(TRUST, before.version, before.body, before.etag, NOW + 50, before.expires_at)
    assert "status:XX" not in state.held
    state.adopt(None, {}, [], {TRUST: NOW + 10}, [])  # an older confirmation does not move it back
    assert state.held[TRUST].checked_at == NOW + 50
    state.adopt(None, {}, [], {TRUST: NOW + 50}, [])
    assert state.held[TRUST].checked_at == NOW + 50


def test_adopt_replaces_dicts_so_readers_keep_a_snapshot(keys: dict[str, SigningKey]) -> None:
    state, _ = _adopted(keys)
    status, held = state.status, state.held
    snapshot_status, snapshot_held = dict(status), dict(held)
    state.adopt(None, {"SH": state.status["BJ"]}, [_held(NOW, NOW + DAY, "status:ZZ")], {TRUST: NOW + 1}, [TRUST])
    assert status == snapshot_status and held == snapshot_held
    assert state.status["SH"] is snapshot_status["BJ"] and TRUST not in state.held and "status:ZZ" in state.held


def test_load_refuses_a_cached_list_that_names_another_issuer(keys: dict[str, SigningKey]) -> None:
    """BJ's key signed a list that says it is SH's, and it was cached as BJ's: neither list is trusted."""
    trust = HeldList(TRUST, 1, _trust(keys), None, NOW, NOW + DAY)
    mislabelled = HeldList("status:BJ", 1, _status(keys, "SH", signer="BJ"), None, NOW, NOW + DAY)
    state = _state(keys)
    problems = state.load([trust, mislabelled], {}, NOW)
    wrong = ListError(Reason.LIST_WRONG_SIGNER, "holds the status list of 'SH'")
    assert problems == [f"cached status list of BJ unusable: {wrong}"]
    assert state.status == {} and set(state.held) == {TRUST}


def test_adopt_records_a_version_0_list_as_held_at_0(keys: dict[str, SigningKey]) -> None:
    """A foreign signer may write version 0: what is held is that, not an invented 1."""
    state = _state(keys)
    state.adopt(None, {}, [HeldList("status:SH", 0, b"", None, NOW, NOW + DAY)], {}, [])
    assert state.versions == {"status:SH": 0}
