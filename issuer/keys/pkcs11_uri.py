"""``pkcs11:`` URIs (RFC 7512) naming an issuer signing key in a token: which token, which object, and
where the PIN and the module come from.

A signing-key record's ``path`` holds such a URI instead of a file name. A URI never carries the PIN:
``pin-value`` (RFC 7512 §2.3) is refused, because the URI is stored in the database and typed on command
lines; the PIN comes from ``SUISHENMA_PKCS11_PIN`` or the file named by ``pin-source``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

SCHEME = "pkcs11:"
# RFC 7512 §2.3: the path attributes that select a token or an object; library-* and slot-* select a module
# or a slot, which the module setting and the token attributes already do.
_TOKEN_ATTRS = ("token", "manufacturer", "serial", "model")
_PATH_ATTRS = (*_TOKEN_ATTRS, "object", "id", "type")
_QUERY_ATTRS = ("pin-source", "module-path")
MAX_URI = 1024
# pk11-pchar without "/" and without the separators (RFC 7512 §2.3): everything else is percent-encoded
_SAFE = "-._~:[]@!$'()*+,="
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class UriError(ValueError):
    """Not a ``pkcs11:`` URI this issuer can use; the message says why (never with a PIN in it)."""


@dataclass(frozen=True)
class TokenKeyRef:
    """A signing key in a PKCS#11 token: the token's attributes, the key object's label and/or id."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    id: bytes | None = None
    pin_source: str | None = None
    module_path: str | None = None

    @property
    def uri(self) -> str:
        """The canonical URI: path attributes in RFC 7512's order, then the query (no PIN, ever)."""
        query = []
        if self.pin_source is not None:
            query.append("pin-source=" + quote(self.pin_source, safe="/:" + _SAFE))
        if self.module_path is not None:
            query.append("module-path=" + quote(self.module_path, safe="/:" + _SAFE))
        return self.display + ("?" + "&".join(query) if query else "")

    @property
    def display(self) -> str:
        """The URI's path part (token and object): what messages and ``/healthz`` show."""
        parts = [f"{name}={quote(value, safe=_SAFE)}" for name, value in self._token_attrs() if value is not None]
        if self.object is not None:
            parts.append("object=" + quote(self.object, safe=_SAFE))
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        parts.append("type=private")
        return SCHEME + ";".join(parts)

    def _token_attrs(self) -> tuple[tuple[str, str | None], ...]:
        return (
            ("token", self.token),
            ("manufacturer", self.manufacturer),
            ("serial", self.serial),
            ("model", self.model),
        )

    def token_attrs(self) -> dict[str, str]:
        """The token attributes the URI names (``token``, ``manufacturer``, ``serial``, ``model``)."""
        return {k: v for k, v in self._token_attrs() if v is not None}

    def with_object(self, label: str) -> TokenKeyRef:
        """The same token and PIN source, another object."""
        return TokenKeyRef(
            self.token, self.manufacturer, self.serial, self.model, label, None, self.pin_source, self.module_path
        )


def is_token_uri(text: str) -> bool:
    """True for anything that claims to be a ``pkcs11:`` URI (records, command-line values)."""
    return text[: len(SCHEME)].lower() == SCHEME


def parse_uri(text: str) -> TokenKeyRef:
    """Parse ``pkcs11:token=T;object=L;id=%01?pin-source=file:/etc/issuer.pin`` (RFC 7512 §2.3).

    Attribute values are percent-decoded; ``id`` is bytes. The URI must name a token (``token`` or
    ``serial``) and an object (``object`` or ``id``); ``type`` may only be ``private`` (the private key; its
    public key is found beside it by id or label).

    Raises:
        UriError: not a ``pkcs11:`` URI, too long, an unknown or repeated attribute, a bad percent-escape,
            ``pin-value`` (a PIN must not be written in a URI), or no token or no object named.
    """
    if len(text) > MAX_URI:
        raise UriError(f"longer than {MAX_URI} characters")
    if not is_token_uri(text):
        raise UriError("it does not start with pkcs11:")
    body = text[len(SCHEME) :]
    path, _, query = body.partition("?")
    if _PCT.search(body):
        raise UriError("a % that is not followed by two hex digits")
    values: dict[str, bytes] = {}
    for part, separator, allowed in ((path, ";", _PATH_ATTRS), (query, "&", _QUERY_ATTRS)):
        for item in part.split(separator) if part else ():
            name, eq, value = item.partition("=")
            name = name.lower()
            if name == "pin-value":
                raise UriError("pin-value is refused: give the PIN in SUISHENMA_PKCS11_PIN or a pin-source file")
            if not eq or name not in allowed:
                raise UriError(f"unknown attribute {name[:40]!r}; known: {', '.join((*allowed,))}")
            if name in values:
                raise UriError(f"attribute {name} given twice")
            values[name] = unquote_to_bytes(value)
    texts = {k: _text(k, v) for k, v in values.items() if k != "id"}
    if texts.get("type", "private") != "private":
        raise UriError("type must be private: name the signing key's private key object")
    if not any(k in values for k in ("token", "serial")):
        raise UriError("name the token (token= or serial=)")
    if "object" not in values and "id" not in values:
        raise UriError("name the key (object= or id=)")
    pin_source = texts.get("pin-source")
    if pin_source is not None and pin_source.startswith("file:"):  # RFC 7512 §2.4: a file: URI or a path
        pin_source = pin_source[len("file:") :]
    return TokenKeyRef(
        token=texts.get("token"),
        manufacturer=texts.get("manufacturer"),
        serial=texts.get("serial"),
        model=texts.get("model"),
        object=texts.get("object"),
        id=values.get("id"),
        pin_source=pin_source,
        module_path=texts.get("module-path"),
    )


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise UriError(f"attribute {name} is not UTF-8") from None
