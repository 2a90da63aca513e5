"""What venues' pooled scan logs can link, and what the issuer's trace resolves (docs/capacity.md, README).

A city in miniature: 1,000 residents make 20 presentations each over three days at 50 venues, each one a
dynamic code (fetched from the issuer) or a device-bound code (made by the resident's phone from its batch
of slot credentials), about half and half. A real issuer service mints everything (SQLite, in a temporary
folder) at the simulated instants; each venue verifies what it is shown with the trust list and writes the
row its scan log would hold (time, venue, scenario, decision, reason, subject, issuer).

The adversary pools everything every venue saw: the code text, the code's bytes, every decoded field (sub,
kid, times, status index, the phone key) and the scan-log rows. It links two presentations when they share
a string of 4 bytes or more that no presentation of any other resident contains (sharing a longer string
means sharing its 4-byte pieces, so 4-grams suffice). Over the pairs of presentations by one resident made
from different credentials, it reports the share linked. The same run with the previous forms (a fixed
``sub``, one phone key and status-list index per phone) is the baseline. Then the issuer traces every
pseudonym the venues logged and the share resolved to the right resident is reported.

Run: .venv/bin/python bench/linkage.py [--residents N]   (about a minute)
Last line: ``linked_across_credentials = X.XX  issuer_resolved = Y.YY  sm1_version = V  smd1_version = W``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from issuer import IssuerService, Settings  # noqa: E402
from issuer.opening import open_storage  # noqa: E402
from issuer.service import SlotCredential  # noqa: E402
from suishenma import (  # noqa: E402
    Alg,
    Claims,
    DeviceKey,
    KeyRing,
    SigningKey,
    Status,
    VerifiedCode,
    mint,
    mint_credential,
    parse_trust_list,
    present,
    read_credential,
    verify,
)
from suishenma._base45 import b45decode  # noqa: E402
from suishenma.keys import load_verification_key  # noqa: E402
from suishenma.qr import qr_version  # noqa: E402
from testing.live_issuer import init_dir  # noqa: E402

DAYS, VENUES, PRESENTATIONS = 3, 50, 20
# 06:00 UTC tomorrow: after the signing key that init makes now, within its life
START = int(time.time()) // 86400 * 86400 + 86400 + 6 * 3600


@dataclass
class Seen:
    """Everything the venues saw, one entry per presentation."""

    resident: list[int] = field(default_factory=list)
    credential: list[str] = field(default_factory=list)  # what the issuer signed: one id per credential
    blobs: list[list[bytes]] = field(default_factory=list)
    subs: list[str] = field(default_factory=list)


def seen_by_venue(code: str, v: VerifiedCode, at: int, venue: int) -> list[bytes]:
    """The strings a venue holds about one presentation: the text, the bytes, each decoded field, its log row."""
    c = v.claims
    fields = [c.subject, v.kid, c.issued_at.to_bytes(8, "big"), c.expires_at.to_bytes(8, "big")]
    if c.status_index is not None:
        fields.append(c.status_index.to_bytes(8, "big"))
    if v.presented_at is not None:
        fields.append(v.presented_at.to_bytes(8, "big"))
    if c.device_key is not None:
        fields.append(c.device_key.to_jwk()["x"].encode())
        fields.append(str(c.device_key.to_cose()).encode())
    prefix_len = code.index(":") + 1
    row = f"{at}|venue-{venue}|venue|ALLOW|ok|{c.subject.hex()}|{c.issuer}".encode()
    return [code.encode(), b45decode(code[prefix_len:]), *fields, row]


def simulate(service: IssuerService, ring: KeyRing, residents: list[str], current: bool, rng: random.Random) -> Seen:
    """Every resident's presentations, in the current forms (through the service) or the previous ones."""
    seen = Seen()
    key = service.key.key
    for r, subject in enumerate(residents):
        phone = SigningKey.generate(Alg.ES256)
        batch: list[tuple[SlotCredential, SigningKey]] = []
        old_cred: bytes | None = None  # previous form: one day credential per phone, one index
        old_index = 1_000_000 + r
        times = sorted(START + rng.randrange(DAYS * 86400) for _ in range(PRESENTATIONS))
        for t in times:
            venue = rng.randrange(VENUES)
            if rng.random() < 0.5:  # a dynamic code from the issuer
                if current:
                    code = service.mint_dynamic(subject, "venue", t, "bench").code
                else:
                    code = mint(Claims.dynamic(bytes.fromhex(subject), Status.GREEN, t, ttl=60), key)
                cred = code
            elif current:
                held = [(c, k) for c, k in batch if c.valid_from <= t < c.expires_at]
                if not held:  # the phone renews for the coming day, online
                    keys = [SigningKey.generate(Alg.ES256) for _ in range(service.settings.device_batch)]
                    jwks = [DeviceKey.of(k).to_jwk() for k in keys]
                    got = service.issue_device_batch(subject, DeviceKey.of(phone).to_jwk(), jwks, t, "bench")
                    batch = list(zip(got.credentials, keys, strict=False))
                    held = [(c, k) for c, k in batch if c.valid_from <= t < c.expires_at]
                credential, slot_key = held[0]
                code = present(read_credential(credential.credential), slot_key, now=t)
                cred = credential.credential
            else:
                day = t - t % 86400
                if old_cred is None or day >= int.from_bytes(old_cred[-8:], "big"):
                    claims = Claims.device(bytes.fromhex(subject), Status.GREEN, day, old_index, DeviceKey.of(phone))
                    old_cred = mint_credential(claims, key) + (day + 86400).to_bytes(8, "big")
                code = present(old_cred[:-8], phone, now=t)
                cred = f"day-{r}-{day}"
            v = verify(code, ring, now=t)
            seen.resident.append(r)
            seen.credential.append(cred)
            seen.blobs.append(seen_by_venue(code, v, t, venue))
            seen.subs.append(v.claims.subject.hex())
    return seen


def linked_share(seen: Seen) -> float:
    """The share of one resident's pairs of presentations from different credentials that share an identifying
    4-byte string: one found in that resident's presentations only."""
    grams, owners = [], []
    for p, blobs in enumerate(seen.blobs):
        for blob in blobs:
            if len(blob) >= 4:
                b = np.frombuffer(blob, dtype=np.uint8).astype(np.uint32)
                g = (b[:-3] << 24) | (b[1:-2] << 16) | (b[2:-1] << 8) | b[3:]
                grams.append(g)
                owners.append(np.full(len(g), p, dtype=np.int64))
    gram = np.concatenate(grams)
    pres = np.concatenate(owners)
    pairs = np.unique((gram.astype(np.int64) << 32) | pres)  # one row per (gram, presentation)
    gram, pres = (pairs >> 32), (pairs & 0xFFFFFFFF)
    resident = np.asarray(seen.resident)[pres]
    starts = np.flatnonzero(np.r_[True, gram[1:] != gram[:-1]])
    ends = np.r_[starts[1:], len(gram)]
    low = np.minimum.reduceat(resident, starts)
    high = np.maximum.reduceat(resident, starts)
    identifying = np.flatnonzero((low == high) & (ends - starts >= 2))
    linked: set[tuple[int, int]] = set()
    for g in identifying:
        members = pres[starts[g] : ends[g]].tolist()
        linked.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    by_resident: dict[int, list[int]] = {}
    for p, r in enumerate(seen.resident):
        by_resident.setdefault(r, []).append(p)
    total = hit = 0
    for members in by_resident.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if seen.credential[a] != seen.credential[b]:
                    total += 1
                    hit += (a, b) in linked
    return hit / total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=1_000)
    args = ap.parse_args()
    rng = random.Random(20261205)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            init_dir(base)
        settings = Settings(base_dir=base)
        service = IssuerService(settings, open_storage(settings))
        residents = [service.enrol("张小三", f"3101011990{i:07d}X", START, "bench") for i in range(args.residents)]
        trust = service.publisher.trust_list(START, force=True, actor="bench")
        root = load_verification_key(base / "keys" / "root.pub")
        ring = parse_trust_list(trust.body, root, now=START).keyring
        previous = simulate(service, ring, residents, False, random.Random(rng.random()))
        current = simulate(service, ring, residents, True, random.Random(rng.random()))
        found = []
        for part in range(0, len(current.subs), 10_000):  # the most one trace request may ask about
            found += service.trace(current.subs[part : part + 10_000], "linkage benchmark", START, "bench")
        resolved = sum(f.subject == residents[r] for f, r in zip(found, current.resident, strict=True))
        service.storage.close()
    before, after = linked_share(previous), linked_share(current)
    sm1 = max(qr_version(b[0].decode(), "M") for b in current.blobs if b[0].startswith(b"SM1:"))
    smd1 = max(qr_version(b[0].decode(), "M") for b in current.blobs if b[0].startswith(b"SMD1:"))
    n = len(current.resident)
    print(f"{args.residents} residents, {n} presentations over {DAYS} days at {VENUES} venues")
    print(f"previous forms: pairs from different credentials linked by the pooled venues {before:.2f}")
    print(f"current forms:  pairs from different credentials linked by the pooled venues {after:.2f}")
    print(f"issuer trace resolved {resolved} of {n} presentations to the right resident")
    print(
        f"linked_across_credentials = {after:.2f}  issuer_resolved = {resolved / n:.2f}"
        f"  sm1_version = {sm1}  smd1_version = {smd1}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
