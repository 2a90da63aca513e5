"""Issuer signing keys held in a PKCS#11 token (an HSM): opened by ``pkcs11:`` URI, made in the token, used by
the core's signing functions as any other ``SigningKey``.

The private key never leaves the token. The ``SigningKey`` made here holds a ``TokenCoseKey`` as its COSE key
(the pattern of the core's SM2 keys): COSE asks it to sign a Sig_structure, and it asks the token: ES256 as
CKM_ECDSA over the SHA-256 digest, whose output is already COSE's raw ``r || s`` (RFC 9053 §2.1; PKCS#11
v3.0 §2.3.1), and EdDSA as CKM_EDDSA over the message (RFC 8032 Ed25519; RFC 9053 §2.2). Its
``private_key`` is a ``cryptography`` key class whose operations go to the token, so that code written for
``cryptography`` keys (the public key, ``sign``) works unchanged, and whose serialisation is refused.

The key's public half is read from the public key object beside it (same id, else same label), and every
opening signs and verifies a test message, so that a public object that does not belong to the private key
is caught before a code is signed with it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Self, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from cryptography.utils import Buffer

from issuer.errors import THE_SIGNING_KEY, KeyUnusable, Problem
from issuer.keys.pkcs11_tokens import TokenModule, module_for
from issuer.keys.pkcs11_uri import TokenKeyRef
from suishenma import Alg, KeyFileError, SigningKey, VerificationKey
from suishenma.errors import Reason
from suishenma.texts import Text

# DER of the curves' object identifiers, as CKA_EC_PARAMS holds them (RFC 5480 §2.1.1.1; RFC 8410 §3)
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")
ED25519_PARAMS = (bytes.fromhex("06032b6570"), b"\x13\x0cedwards25519")  # the OID, or PKCS#11 3.0's name
_PROBE = b"suishenma token key check"
T = TypeVar("T")
ID_BYTES = 8


class TokenSigner:
    """Signs with one private key object of a token, finding it again after the token returns."""

    def __init__(self, ref: TokenKeyRef, alg: Alg, what: Text = THE_SIGNING_KEY) -> None:
        self.ref, self.alg, self.what = ref, alg, what
        self.module: TokenModule = module_for(ref)
        self._handle: tuple[int, Any] | None = None  # (module generation, private key object)

    def _private(self, session: Any) -> Any:
        import pkcs11

        generation = self.module.generation
        if self._handle is None or self._handle[0] != generation:
            key = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label=self.ref.object, id=self.ref.id)
            self._handle = (generation, key)
        return self._handle[1]

    def sign(self, msg: bytes) -> bytes:
        """A raw COSE signature over ``msg``: ``r || s`` for ES256, the 64-byte Ed25519 signature for EdDSA.

        A token that lost its session (removed and back, a network HSM reconnected) is found again and the
        signature tried once more before an error is raised.

        Raises:
            KeyUnusable: TOKEN_MISSING, TOKEN_KEY_MISSING, PIN_*, TOKEN_* (``pkcs11_tokens``).
        """
        import pkcs11

        if self.alg == Alg.ES256:
            data, mechanism = hashlib.sha256(msg).digest(), pkcs11.Mechanism.ECDSA
        else:
            data, mechanism = msg, pkcs11.Mechanism.EDDSA
        return again_if_lost(
            self.module, self.ref, lambda: self._sign_now(data, mechanism), retry=(Problem.TOKEN_MISSING,)
        )

    def _sign_now(self, data: bytes, mechanism: Any) -> bytes:
        with self.module.using(self.ref, self.what) as session:
            return bytes(self._private(session).sign(data, mechanism=mechanism))


def again_if_lost(module: TokenModule, ref: TokenKeyRef, act: Callable[[], T], retry: tuple[Problem, ...]) -> T:
    """``act()``, and once more on a fresh session when it failed with one of ``retry``: a session kept from
    before a token was pulled and put back fails, or finds no objects, though the token is there again.

    Raises:
        KeyUnusable: what the second try raised, or the first when it was not one of ``retry``.
    """
    try:
        return act()
    except KeyUnusable as exc:
        if exc.problem not in retry:
            raise
    with module.lock:
        module.forget(ref)
    return act()


class TokenCoseKey:
    """The COSE key of a token-held signing key: signatures from the token, verification with the public key."""

    def __init__(self, signer: TokenSigner, public: VerificationKey) -> None:
        self.signer, self.public = signer, public

    def sign(self, msg: bytes) -> bytes:
        """Raises: KeyUnusable (the token cannot sign now)."""
        return self.signer.sign(msg)

    def verify(self, msg: bytes, sig: bytes) -> None:
        self.public.cose_key.verify(msg, sig)


def _refuse_export() -> NoReturn:
    raise KeyFileError(Reason.KEY_FILE, "the private key stays in its token: it cannot be written out")


class _HeldInToken:
    """What a token-held key answers for ``cryptography``'s export and copy methods: no export, and a copy is
    the same handle (the key cannot be duplicated out of the token)."""

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _refuse_export()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class TokenP256Key(_HeldInToken, ec.EllipticCurvePrivateKey):
    """A P-256 private key in a token, as a ``cryptography`` key: signs there, never serialises."""

    def __init__(self, signer: TokenSigner, public: ec.EllipticCurvePublicKey) -> None:
        self._signer, self._public = signer, public

    @property
    def curve(self) -> ec.EllipticCurve:
        return ec.SECP256R1()

    @property
    def key_size(self) -> int:
        return 256

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """A DER ECDSA signature over SHA-256 of ``data``, as ``cryptography``'s keys return.

        Raises:
            ValueError: another hash than SHA-256 (the token is given a SHA-256 digest).
            KeyUnusable: the token cannot sign now.
        """
        algorithm = signature_algorithm.algorithm if isinstance(signature_algorithm, ec.ECDSA) else None
        if not isinstance(algorithm, hashes.SHA256):
            raise ValueError("a token-held ES256 key signs ECDSA with SHA-256 only")
        raw = self._signer.sign(bytes(data))
        return utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise ValueError("an issuer signing key does not agree keys")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse_export()


class TokenEd25519Key(_HeldInToken, ed25519.Ed25519PrivateKey):
    """An Ed25519 private key in a token, as a ``cryptography`` key: signs there, never serialises."""

    def __init__(self, signer: TokenSigner, public: ed25519.Ed25519PublicKey) -> None:
        self._signer, self._public = signer, public

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def sign(self, data: Buffer) -> bytes:
        """Raises: KeyUnusable: the token cannot sign now."""
        return self._signer.sign(bytes(data))

    def private_bytes_raw(self) -> bytes:
        _refuse_export()


def _octets(point: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING (PKCS#11 v3.0 §2.3.3); some tokens give the bare point."""
    if len(point) >= 2 and point[0] == 0x04 and point[1] == len(point) - 2:
        return point[2:]
    if len(point) >= 3 and point[0] == 0x04 and point[1] == 0x81 and point[2] == len(point) - 3:
        return point[3:]
    return point


def _public_of(session: Any, ref: TokenKeyRef, private: Any, what: Text) -> tuple[Alg, Any]:
    """The algorithm and ``cryptography`` public key of ``private``, from the public object beside it.

    Raises:
        KeyUnusable: TOKEN_KEY_UNUSABLE (another curve or key type, or no public object beside it).
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    where = Path(ref.display)
    key_id, label = private[Attribute.ID], private[Attribute.LABEL]
    match = {Attribute.CLASS: ObjectClass.PUBLIC_KEY}
    match.update({Attribute.ID: key_id} if key_id else {Attribute.LABEL: label})
    publics = list(session.get_objects(match))
    if len(publics) != 1:
        detail = "no public key object beside it" if not publics else "several public key objects match"
        raise KeyUnusable(Problem.TOKEN_KEY_UNUSABLE, where, what, detail)
    public = publics[0]
    key_type, params, point = private[Attribute.KEY_TYPE], public[Attribute.EC_PARAMS], public[Attribute.EC_POINT]
    try:
        if key_type == KeyType.EC and params == P256_PARAMS:
            return Alg.ES256, ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _octets(point))
        if key_type == KeyType.EC_EDWARDS and params in ED25519_PARAMS:
            return Alg.EdDSA, ed25519.Ed25519PublicKey.from_public_bytes(_octets(point))
    except (ValueError, pkcs11.PKCS11Error):
        raise KeyUnusable(Problem.TOKEN_KEY_UNUSABLE, where, what, "its public key object is damaged") from None
    raise KeyUnusable(Problem.TOKEN_KEY_UNUSABLE, where, what, "not a P-256 or Ed25519 key")


def open_token_key(ref: TokenKeyRef, what: Text = THE_SIGNING_KEY) -> SigningKey:
    """The ``SigningKey`` for the key ``ref`` names, checked by signing a test message in the token.

    Raises:
        KeyUnusable: the module, token, PIN or key cannot be used (``pkcs11_tokens``), the key is not P-256 or
            Ed25519, or its public key object does not belong to it (TOKEN_KEY_UNUSABLE).
    """
    import pkcs11

    def find() -> tuple[Alg, Any]:
        with module.using(ref, what) as session:
            private = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label=ref.object, id=ref.id)
            return _public_of(session, ref, private, what)

    module = module_for(ref)
    alg, public = again_if_lost(module, ref, find, retry=(Problem.TOKEN_MISSING, Problem.TOKEN_KEY_MISSING))
    signer = TokenSigner(ref, alg, what)
    verification = VerificationKey.from_public_key(public, alg)
    cose = TokenCoseKey(signer, verification)
    private_key = TokenP256Key(signer, public) if alg == Alg.ES256 else TokenEd25519Key(signer, public)
    try:
        verification.verify_signature(_PROBE, cose.sign(_PROBE))
    except Exception as exc:
        if isinstance(exc, KeyUnusable):
            raise
        raise KeyUnusable(
            Problem.TOKEN_KEY_UNUSABLE, Path(ref.display), what, "its public key does not match"
        ) from None
    return SigningKey(private_key, alg, verification.kid, cose)


def generate_token_key(ref: TokenKeyRef, alg: Alg, what: Text = THE_SIGNING_KEY) -> tuple[TokenKeyRef, SigningKey]:
    """Make a key pair in the token ``ref`` names, labelled ``ref.object``, with a random id (or ``ref.id``);
    return the URI that names it by label and id, and the opened key. The private key is made sensitive and
    not extractable: it never leaves the token.

    Raises:
        UsageError: ``alg`` is not ES256 or EdDSA.
        KeyUnusable: TOKEN_KEY_EXISTS (an object with that label or id is there), or the token cannot be used.
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    from suishenma import UsageError

    if alg not in (Alg.ES256, Alg.EdDSA):
        raise UsageError(f"a token key is ES256 or EdDSA, not {Alg(alg).name}")
    key_id = ref.id if ref.id is not None else os.urandom(ID_BYTES)
    made = TokenKeyRef(
        ref.token, ref.manufacturer, ref.serial, ref.model, ref.object, key_id, ref.pin_source, ref.module_path
    )
    module = module_for(ref)
    with module.using(ref, what) as session:
        taken = [{Attribute.ID: key_id}] + ([{Attribute.LABEL: ref.object}] if ref.object else [])
        if any(next(iter(session.get_objects(attrs)), None) is not None for attrs in taken):
            raise KeyUnusable(Problem.TOKEN_KEY_EXISTS, Path(made.display), what)
        curve = "secp256r1" if alg == Alg.ES256 else "1.3.101.112"
        key_type = KeyType.EC if alg == Alg.ES256 else KeyType.EC_EDWARDS
        mechanism = Mechanism.EC_KEY_PAIR_GEN if alg == Alg.ES256 else Mechanism.EC_EDWARDS_KEY_PAIR_GEN
        params = session.create_domain_parameters(
            key_type, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
        )
        params.generate_keypair(
            id=key_id,
            label=ref.object,
            store=True,
            mechanism=mechanism,
            capabilities=pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY,
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True},
            public_template={Attribute.PRIVATE: False},
        )
    return made, open_token_key(made, what)
