"""The main job on the embedded defaults (README "Quick start").

Makes development keys under keys/ (once), signs a trust list, mints a code for a demo person,
renders its QR to out/demo-code.png and verifies it offline, printing the verdict.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from suishenma import (  # noqa: E402
    Claims,
    IssuerEntry,
    SigningKey,
    Status,
    SuishenmaError,
    load_signing_key,
    mint,
    parse_trust_list,
    sign_trust_list,
    verify,
    write_key_pair,
)
from suishenma.qr import save_qr  # noqa: E402

KEYS = ROOT / "keys"
OUT = ROOT / "out"
DAY = 86400


def dev_key(name: str) -> SigningKey:
    """Load keys/NAME.key, making it on first use (development keys only)."""
    path = KEYS / f"{name}.key"
    if not path.exists():
        write_key_pair(SigningKey.generate(), KEYS / name)
        print(f"made development key {path}")
    return load_signing_key(path)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    now = int(time.time())
    root, issuer = dev_key("dev-root"), dev_key("dev-issuer")
    entry = IssuerEntry(issuer.public(), "SH", now - DAY, now + 365 * DAY)
    trust_bytes = sign_trust_list([entry], root, version=1, now=now, ttl=7 * DAY)
    (OUT / "trust-list.cwt").write_bytes(trust_bytes)

    claims = Claims.dynamic(os.urandom(8), Status.GREEN, now, name="张小三", id_number="310101199001011234")
    code = mint(claims, issuer)
    version = save_qr(code, OUT / "demo-code.png")
    print(f"code ({len(code)} characters, QR version {version} at ECC M):\n{code}")
    print(f"QR image: {OUT / 'demo-code.png'}")

    trust = parse_trust_list(trust_bytes, root.public(), now=now)
    try:
        v = verify(code, trust.keyring, now=now)
    except SuishenmaError as exc:
        print(f"DENY  {exc.reason.value}: {exc.message_en} / {exc.message_zh}")
        return 1
    c = v.claims
    print(f"ALLOW {c.status.name.lower()} {c.masked_name} {c.masked_id} issuer={c.issuer} kid={v.kid.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
