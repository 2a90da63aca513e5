"""Scenario policies: every rule a gate applies after the signature checks out, as data (DESIGN §4).

Built in: ``venue``, ``hospital``, ``transit``. Custom policies come from TOML and may ``extends`` one
of them; the table in README.md ("Scenario policies") lists the defaults.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from suishenma import UsageError
from suishenma.texts import Text

from .trust_state import HeldList
from .verdict import MESSAGES, Decision, VerdictReason

HOUR, DAY = 3600, 86400
IDENTITY_FIELDS = ("masked_name", "masked_id")


@dataclass(frozen=True)
class Policy:
    name: str
    statuses: Mapping[str, Decision]  # the decision for each status colour
    on_invalid: Decision = Decision.DENY  # bad, expired, unknown or revoked codes
    required_claims: tuple[str, ...] = ()  # among IDENTITY_FIELDS
    max_code_age_s: int | None = None  # refuse codes issued longer ago than this, even if unexpired
    skew_s: int = 10  # clock-skew allowance for iat/exp
    replay: str = "off"  # "once": a code opens one gate once (remembered until it expires)
    reentry_s: int = 0  # anti-passback: a phone credential passes this verifier at most once per this; 0: off
    status_list: str = "offline"  # "offline": checked for paper codes and device credentials; "always": every code
    max_list_age_s: int = 3 * DAY  # a list not confirmed with its issuer for longer than this is stale
    on_stale: Decision = Decision.DENY  # decision when a list the code needs is stale or missing
    messages: Mapping[VerdictReason, Text] = field(default_factory=dict)

    def is_stale(self, held: HeldList, now: int) -> bool:
        """A list this policy may not rely on: expired, or not confirmed by an issuer for too long."""
        return held.expires_at <= now or now - held.checked_at > self.max_list_age_s

    def message(self, reason: VerdictReason) -> Text:
        return self.messages.get(reason) or MESSAGES[reason]


BUILTIN: dict[str, Policy] = {
    "venue": Policy(
        "venue",
        {"green": Decision.ALLOW, "yellow": Decision.DENY, "red": Decision.DENY},
        max_list_age_s=3 * DAY,
        on_stale=Decision.DENY,
    ),
    "hospital": Policy(
        "hospital",
        {"green": Decision.ALLOW, "yellow": Decision.REFER, "red": Decision.REFER},
        # under the amber "see staff" banner: where to go, not "no entry"
        messages={
            VerdictReason.STATUS_YELLOW: Text("黄码：请到发热门诊就诊", "Yellow code: please go to the fever clinic"),
            VerdictReason.STATUS_RED: Text("红码：请到发热门诊就诊", "Red code: please go to the fever clinic"),
        },
        on_invalid=Decision.REFER,
        required_claims=IDENTITY_FIELDS,
        max_list_age_s=7 * DAY,
        on_stale=Decision.REFER,
    ),
    "transit": Policy(
        "transit",
        {"green": Decision.ALLOW, "yellow": Decision.DENY, "red": Decision.DENY},
        max_code_age_s=120,
        skew_s=5,
        replay="once",
        # a metro's anti-passback window: a credential handed back over the barrier is refused while its
        # holder is still on the platform, and a rider who leaves and comes back after an errand is not
        reentry_s=10 * 60,
        status_list="always",
        max_list_age_s=6 * HOUR,
        on_stale=Decision.DENY,
    ),
}


def policy_from_toml(text: str) -> Policy:
    """A policy from TOML text: ``extends`` a built-in one (default venue) and overrides fields.

    Raises:
        UsageError: invalid TOML, an unknown key, or a value of the wrong kind.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"policy TOML: {exc}") from None
    base_name = data.pop("extends", "venue")
    if base_name not in BUILTIN:
        raise UsageError(f"policy extends unknown scenario {base_name!r}; use one of {', '.join(BUILTIN)}")
    known = {f.name for f in fields(Policy)}
    unknown = set(data) - known
    if unknown:
        raise UsageError(f"unknown policy keys: {', '.join(sorted(unknown))}")
    try:
        return replace(BUILTIN[base_name], **_convert(data))
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"policy value: {exc}") from None


def _convert(data: dict[str, Any]) -> dict[str, Any]:
    """Typed policy fields from TOML values. Raises: ValueError naming the field."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "statuses":
            out[key] = {str(k): _decision(f"statuses.{k}", v) for k, v in _table(key, value).items()}
            if set(out[key]) != {"green", "yellow", "red"}:
                raise ValueError("statuses must give a decision for green, yellow and red")
        elif key in ("on_invalid", "on_stale"):
            out[key] = _decision(key, value)
        elif key == "required_claims":
            if not isinstance(value, list) or not set(value) <= set(IDENTITY_FIELDS):
                raise ValueError(f"required_claims must be a list among {', '.join(IDENTITY_FIELDS)}")
            out[key] = tuple(value)
        elif key == "messages":
            out[key] = {_reason(k): _message_pair(f"messages.{k}", v) for k, v in _table(key, value).items()}
        elif key in ("max_code_age_s", "skew_s", "max_list_age_s", "reentry_s"):
            if type(value) is not int or value < 0:  # a TOML boolean is not a duration
                raise ValueError(f"{key} must be a non-negative integer")
            out[key] = value
        elif key == "replay":
            if value not in ("off", "once"):
                raise ValueError("replay must be 'off' or 'once'")
            out[key] = value
        elif key == "status_list":
            if value not in ("offline", "always"):
                raise ValueError("status_list must be 'offline' or 'always'")
            out[key] = value
        elif key == "name":
            if not isinstance(value, str) or not value:
                raise ValueError("name must be a non-empty string")
            out[key] = value
    return out


def _table(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a table")
    return value


def _decision(key: str, value: Any) -> Decision:
    if not isinstance(value, str) or value.upper() not in Decision.__members__:
        raise ValueError(f"{key} must be one of {', '.join(Decision.__members__)}, not {value!r}")
    return Decision(value.upper())


def _reason(key: str) -> VerdictReason:
    if key not in VerdictReason._value2member_map_:
        raise ValueError(f"messages.{key} is not a verdict reason")
    return VerdictReason(key)


def _message_pair(key: str, value: Any) -> Text:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{key} must be a pair of texts: [Chinese, English]")
    return Text(value[0], value[1])


def resolve_policy(scenario: str) -> Policy:
    """A built-in scenario by name, else TOML text.

    Raises:
        UsageError: neither.
    """
    if scenario in BUILTIN:
        return BUILTIN[scenario]
    if "\n" not in scenario and "=" not in scenario:  # a name, not TOML: a misspelled built-in
        close = difflib.get_close_matches(scenario, list(BUILTIN), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown scenario {scenario!r}{hint}: use {', '.join(BUILTIN)}, or a policy TOML file")
    return policy_from_toml(scenario)
