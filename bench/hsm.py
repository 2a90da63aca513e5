"""Mints per second with the issuer key in a PKCS#11 token (SoftHSM2) beside the same key kind in a file.

Run: .venv/bin/python bench/hsm.py [--threads N]  (about 30 s). A SoftHSM2 token is made in a temporary folder
(needs Debian's softhsm2, scripts/apt-packages.txt); ES256 and Ed25519 keys are generated in it and as files,
and a dynamic code is minted with each (``suishenma.mint``: claims, COSE, Base45), interleaved in one run.
With ``--threads`` the token keys are also driven from N threads at once: one process shares one session
per token under a lock (issuer/keys/pkcs11_tokens.py), so this shows what that lock costs.
Prints mints/s for each and the token/file ratios; docs/capacity.md turns them into tokens for the city.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import interleaved
from issuer.keys import pkcs11_tokens
from issuer.keys.pkcs11_keys import generate_token_key
from issuer.keys.pkcs11_uri import parse_uri
from suishenma import Alg, Claims, KeyRing, SigningKey, Status, mint, verify

NOW = 1_790_000_000
SUBJECT = bytes.fromhex("8815131f6e1ff957760ad9325832acc9")
PIN = "246813"


def _token(root: Path) -> str:
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ["SUISHENMA_PKCS11_PIN"] = PIN
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "97531", "--pin", PIN],
        check=True,
        capture_output=True,
    )
    return "bench"


def _threaded(key: SigningKey, claims: Claims, threads: int, seconds: float = 3.0) -> float:
    """Mints per second from ``threads`` threads sharing ``key`` for ``seconds``."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        while time.perf_counter() < stop:
            mint(claims, key)
            counts[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--number", type=int, default=2000, help="mints per round and case")
    args = ap.parse_args(argv)
    pkcs11_tokens.REINIT_INTERVAL_S = 0.0  # the token is made after the module may have loaded
    with tempfile.TemporaryDirectory(prefix="suishenma-hsm-") as tmp:
        label = _token(Path(tmp))
        _, token_es = generate_token_key(parse_uri(f"pkcs11:token={label};object=es256"), Alg.ES256)
        _, token_ed = generate_token_key(parse_uri(f"pkcs11:token={label};object=ed25519"), Alg.EdDSA)
        keys = {
            "file ES256": SigningKey.generate(Alg.ES256),
            "SoftHSM2 ES256": token_es,
            "file Ed25519": SigningKey.generate(Alg.EdDSA),
            "SoftHSM2 Ed25519": token_ed,
        }
        claims = Claims.dynamic(SUBJECT, Status.GREEN, NOW)
        for key in keys.values():  # every key's codes verify with its public key
            verify(mint(claims, key), KeyRing.of(key.public(), issuer="SH"), now=NOW)
        us = interleaved(
            {name: (lambda k=key: mint(claims, k)) for name, key in keys.items()}, number=args.number, rounds=5
        )
        for name, t in us.items():
            print(f"{name:18s} {1e6 / t:8,.0f} mints/s  ({t:6.1f} us a mint, median of 5 rounds)")
        print(f"SoftHSM2 / file, ES256:   {us['file ES256'] / us['SoftHSM2 ES256']:.2f}x")
        print(f"SoftHSM2 / file, Ed25519: {us['file Ed25519'] / us['SoftHSM2 Ed25519']:.2f}x")
        if args.threads > 1:
            for name in ("file ES256", "SoftHSM2 ES256"):
                rate = _threaded(keys[name], claims, args.threads)
                print(f"{name:18s} {rate:8,.0f} mints/s from {args.threads} threads in one process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
