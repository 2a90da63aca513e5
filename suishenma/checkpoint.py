"""Audit checkpoints: an issuer's signed statement of the head of its audit log (DESIGN §6).

In the style of transparency-log checkpoints (C2SP tlog-checkpoint: origin, tree size, root hash,
signatures), a checkpoint is a COSE_Sign1 (RFC 9052 §4.2, tag 18, typ
``application/suishenma-checkpoint+cwt`` in the protected header) over CWT claims (RFC 8392):

- ``iss`` (1): the issuer id, text;
- ``iat`` (6): when the checkpoint was signed, integer POSIX seconds;
- our private claim (-65537), a map: ``AUDIT_SEQ`` (13) the id of the log's last row (0 for an empty
  log) and ``AUDIT_HEAD`` (14) that row's hash, a 32-byte SHA-256 (all zeros for an empty log).

It is signed by one of the issuer's signing keys. Whoever holds a checkpoint can later show that a log
ending before ``seq``, or holding another hash at ``seq``, was cut or rewritten: the chain's own hashes
cannot show that, since a forger recomputes them. A checkpoint does not expire: it states a past fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import _cbor, _cose
from ._signed_list import get, open_signed
from .errors import ListError, Reason, UsageError
from .keys import SigningKey, VerificationKey
from .labels import CHECKPOINT_TYP, Claim, Header, SmField
from .masking import unprintable_character

MAX_CHECKPOINT_BYTES = 1024
HEAD_BYTES = 32
MAX_SEQ = 2**63 - 1
MAX_ISSUER = 16


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the log of ``issuer`` had ``seq`` rows, the last hashing to ``head``."""

    issuer: str
    seq: int
    head: bytes
    issued_at: int
    kid: bytes  # the key that signed it

    @property
    def head_hex(self) -> str:
        return self.head.hex()


def _issuer_problem(issuer: object) -> str | None:
    if not isinstance(issuer, str) or not 1 <= len(issuer) <= MAX_ISSUER:
        return f"issuer must be text of 1 to {MAX_ISSUER} characters"
    if unprintable_character(issuer) is not None:
        return "issuer holds an unprintable character"
    return None


def sign_checkpoint(issuer: str, seq: int, head: bytes, key: SigningKey, *, now: int) -> bytes:
    """Sign the statement "the audit log of ``issuer`` ends at row ``seq``, whose hash is ``head``".

    Raises:
        UsageError: an issuer that is empty, too long or unprintable; ``seq`` or ``now`` out of range;
            ``head`` not 32 bytes.
    """
    problem = _issuer_problem(issuer)
    if problem:
        raise UsageError(problem)
    if not 0 <= seq <= MAX_SEQ or now < 0:
        raise UsageError(f"seq must be 0 to {MAX_SEQ} and now not negative")
    if len(head) != HEAD_BYTES:
        raise UsageError(f"head must be {HEAD_BYTES} bytes (a SHA-256)")
    claims = {
        int(Claim.ISS): issuer,
        int(Claim.IAT): now,
        int(Claim.SUISHENMA): {int(SmField.AUDIT_SEQ): seq, int(SmField.AUDIT_HEAD): bytes(head)},
    }
    return _cose.sign(_cbor.dumps(claims), key, {Header.TYP: CHECKPOINT_TYP})


def parse_checkpoint(data: bytes, keys_by_kid: Mapping[bytes, VerificationKey]) -> Checkpoint:
    """Verify a checkpoint signed by one of ``keys_by_kid`` (the issuer's keys, retired ones included).

    Raises:
        ListError: TOO_LARGE; LIST_WRONG_SIGNER (unknown kid, algorithm mismatch, bad signature);
            LIST_MALFORMED (not a COSE_Sign1, another typ such as a status list's, a missing or
            mistyped field, a head that is not 32 bytes, a seq out of range).
    """
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise ListError(Reason.TOO_LARGE, f"checkpoint over {MAX_CHECKPOINT_BYTES} bytes")
    claims, key = open_signed(data, keys_by_kid, CHECKPOINT_TYP, max_items=16)
    ours = get(claims, Claim.SUISHENMA, dict)
    issuer = get(claims, Claim.ISS, str)
    seq = get(ours, SmField.AUDIT_SEQ, int)
    head = get(ours, SmField.AUDIT_HEAD, bytes)
    issued_at = get(claims, Claim.IAT, int)
    problem = _issuer_problem(issuer)
    if problem:
        raise ListError(Reason.LIST_MALFORMED, problem)
    if not 0 <= seq <= MAX_SEQ or issued_at < 0:
        raise ListError(Reason.LIST_MALFORMED, "seq or iat out of range")
    if len(head) != HEAD_BYTES:
        raise ListError(Reason.LIST_MALFORMED, f"head must be {HEAD_BYTES} bytes")
    return Checkpoint(issuer, seq, head, issued_at, key.kid)
