"""Per-code pseudonyms (docs/format.md §4): what ``sub`` holds in the codes and credentials an issuer mints.

``sub = AES-256(pseudonym key, subject id (8 bytes) || nonce (8 bytes))``, one block. Every code gets a
fresh nonce, so two codes of one person share no byte a verifier could match (the block cipher's output is
indistinguishable from random to anyone without the key), and the holder of the key maps any ``sub`` back
to the person by decrypting it. The key is the issuer's alone and never reaches a verifier.
"""

from __future__ import annotations

import hashlib
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import UsageError

PSEUDONYM_BYTES = 16
SUBJECT_ID_BYTES = 8
NONCE_BYTES = 8
KEY_BYTES = 32


class PseudonymKey:
    """An issuer's pseudonym key (AES-256). ``kid`` names it in files and audit records, never in codes.

    Raises (constructor):
        UsageError: the secret is not 32 bytes.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise UsageError(f"a pseudonym key is {KEY_BYTES} bytes")
        self.secret = secret
        self._cipher = Cipher(algorithms.AES(secret), modes.ECB())  # one block: ECB is the bare cipher
        self.kid = hashlib.sha256(b"suishenma pseudonym key\0" + secret).digest()[:4].hex()

    @classmethod
    def generate(cls) -> PseudonymKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def pseudonym(self, subject_id: bytes, nonce: bytes | None = None) -> bytes:
        """A fresh pseudonym for ``subject_id`` (a random nonce unless one is given, for test vectors).

        Raises:
            UsageError: the subject id or the nonce is not 8 bytes.
        """
        nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
        if len(subject_id) != SUBJECT_ID_BYTES or len(nonce) != NONCE_BYTES:
            raise UsageError(f"a pseudonym hides a {SUBJECT_ID_BYTES}-byte subject id and a {NONCE_BYTES}-byte nonce")
        enc = self._cipher.encryptor()
        return enc.update(subject_id + nonce) + enc.finalize()

    def open(self, pseudonym: bytes) -> tuple[bytes, bytes]:
        """The subject id and nonce a pseudonym hides. Any 16 bytes open to something: whether the subject
        id names a person is the caller's check (with the wrong key it names nobody, but for odds of one in
        2^64 per person enrolled).

        Raises:
            UsageError: not 16 bytes.
        """
        if len(pseudonym) != PSEUDONYM_BYTES:
            raise UsageError(f"a pseudonym is {PSEUDONYM_BYTES} bytes, not {len(pseudonym)}")
        dec = self._cipher.decryptor()
        block = dec.update(pseudonym) + dec.finalize()
        return block[:SUBJECT_ID_BYTES], block[SUBJECT_ID_BYTES:]
