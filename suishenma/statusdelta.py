"""Status-list deltas: the entries that changed from one version of a list to another (docs/format.md §6, "Deltas").

A verifier that holds version *a* and learns from a signed timestamp that *b* is current fetches the
delta *a*→*b* instead of the whole list (in the manner of CRLite's deltas): the indices that changed, in
increasing order, as Rice-coded gaps, each followed by its new value in the list's bit width. A day of
city-wide changes costs tens of kilobytes where the list costs a megabyte.

A delta is a CBOR map (``DeltaField``) and carries no signature of its own: it names the first bytes of
the digests of the content it applies to and of its result, and the verifier installs the result only if
its full digest is the one a valid signed timestamp names (``freshness.list_digest``). A delta that does
not apply, or was altered on the way, costs a download of the full list and nothing else.

Decoding caps the input before it allocates: at most ``MAX_DELTA_BYTES``, ``MAX_DELTA_CHANGES`` changes,
and no more changes than the coded bits can hold.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from . import _cbor
from .errors import ListError, Reason, UsageError
from .labels import STATUS_LIST_BITS_ALLOWED, DeltaField
from .statuslist import MAX_ENTRIES, SignedStatusList

MAX_DELTA_BYTES = 4 << 20  # several times a city's full list: beyond, the full list is cheaper
MAX_DELTA_CHANGES = 1 << 22  # 4 M: a week of a city's changes many times over
DIGEST_PREFIX = 8  # bytes of each digest a delta names
MAX_RICE = 40
_CHUNK = 4096  # bytes compared at once when looking for changes
_T = TypeVar("_T")


@dataclass(frozen=True)
class StatusDelta:
    """The changes that turn version ``from_version`` of ``issuer``'s list into ``to_version``.

    ``indices`` increase strictly; ``values[i]`` is the new value at ``indices[i]``.
    """

    issuer: str
    from_version: int
    to_version: int
    from_digest: bytes  # the first DIGEST_PREFIX bytes of each content's digest
    to_digest: bytes
    bits: int
    size: int  # entries of the result
    indices: array[int] = field(repr=False)
    values: bytes = field(repr=False)

    def apply_to(self, lst: SignedStatusList) -> SignedStatusList:
        """``lst`` with the changes made. Nothing proves the result yet: it stands only once a signed timestamp
        names its digest (``freshness.vouched``).

        Raises:
            ListError: LIST_DELTA_MISMATCH when the delta is for another issuer, version or content.
        """
        if (
            self.issuer != lst.issuer
            or self.from_version != lst.version
            or self.size < lst.size
            or self.bits != lst.bits
        ):
            raise ListError(
                Reason.LIST_DELTA_MISMATCH,
                f"delta from version {self.from_version} of {self.issuer!r} ({self.size} entries of {self.bits} bits);"
                f" held: {lst.version} of {lst.issuer!r} ({lst.size} of {lst.bits}); lists never shrink",
            )
        if self.from_digest != lst.digest[:DIGEST_PREFIX]:
            raise ListError(Reason.LIST_DELTA_MISMATCH, f"delta from another content of version {lst.version}")
        return replace(lst, version=self.to_version, size=self.size, data=self.apply(lst.data, lst.bits, lst.size))

    def then(self, later: StatusDelta) -> StatusDelta:
        """This delta followed by ``later`` as one delta.

        Raises:
            ListError: LIST_DELTA_MISMATCH when ``later`` does not start where this one ends.
        """
        if (
            later.issuer != self.issuer
            or later.from_version != self.to_version
            or later.from_digest != self.to_digest
            or later.bits != self.bits
            or later.size < self.size
        ):
            raise ListError(Reason.LIST_DELTA_MISMATCH, "the deltas do not follow each other")
        changes = dict(zip(self.indices, self.values, strict=True))
        changes.update(zip(later.indices, later.values, strict=True))
        ordered = sorted(i for i in changes if i < later.size)
        return replace(
            later,
            from_version=self.from_version,
            from_digest=self.from_digest,
            indices=array("q", ordered),
            values=bytes(changes[i] for i in ordered),
        )

    def to_bytes(self) -> bytes:
        """The wire form (``encode_delta``)."""
        return encode_delta(
            issuer=self.issuer,
            from_version=self.from_version,
            to_version=self.to_version,
            from_digest=self.from_digest,
            to_digest=self.to_digest,
            bits=self.bits,
            size=self.size,
            indices=self.indices,
            values=self.values,
        )

    def apply(self, data: bytes, bits: int, size: int) -> bytes:
        """The bit string of the result from ``data``, the bit string of a list of ``size`` entries.

        Raises:
            ListError: LIST_DELTA_MISMATCH when the bit widths differ, or the result would be shorter (lists
                never shrink: an index once handed out keeps its entry).
        """
        if bits != self.bits:
            raise ListError(Reason.LIST_DELTA_MISMATCH, f"delta of {self.bits}-bit entries for a {bits}-bit list")
        if self.size < size:
            raise ListError(Reason.LIST_DELTA_MISMATCH, f"delta to {self.size} entries for a list of {size}")
        nbytes = (self.size * bits + 7) // 8
        out = bytearray(nbytes)
        kept = min(nbytes, len(data))
        out[:kept] = memoryview(data)[:kept]
        mask = (1 << bits) - 1
        for index, value in zip(self.indices, self.values, strict=True):
            pos = index * bits
            shift = pos & 7
            out[pos >> 3] = (out[pos >> 3] & ~(mask << shift)) | (value << shift)
        return bytes(out)


def changes_between(old: bytes, old_size: int, new: bytes, new_size: int, bits: int) -> tuple[array[int], bytes]:
    """The (indices, values) at which ``new`` differs from ``old`` (entries past ``old_size`` were zero)."""
    nbytes = (new_size * bits + 7) // 8
    old = old[: (min(old_size, new_size) * bits + 7) // 8]
    indices: array[int] = array("q")
    values = bytearray()
    mask = (1 << bits) - 1
    for start in range(0, nbytes, _CHUNK):
        a, b = old[start : start + _CHUNK], new[start : start + _CHUNK]
        if a == b:
            continue
        # Little-endian integers put entry j of the chunk at bit j * bits, as the list does (LSB first).
        after = int.from_bytes(b, "little")
        differ = int.from_bytes(a, "little") ^ after
        first = start * 8 // bits
        while differ:
            slot = ((differ & -differ).bit_length() - 1) // bits
            index = first + slot
            if index >= new_size:
                break
            indices.append(index)
            values.append((after >> (slot * bits)) & mask)
            differ &= ~(mask << (slot * bits))
    return indices, bytes(values)


def encode_delta(
    *,
    issuer: str,
    from_version: int,
    to_version: int,
    from_digest: bytes,
    to_digest: bytes,
    bits: int,
    size: int,
    indices: array[int] | list[int],
    values: bytes,
) -> bytes:
    """The wire form of a delta. ``indices`` must increase strictly and lie below ``size``.

    Raises:
        UsageError: versions out of order, a bit width or size out of range, indices out of order or
            range, values that do not fit the bit width.
    """
    if not 1 <= from_version < to_version or bits not in STATUS_LIST_BITS_ALLOWED or not 0 < size <= MAX_ENTRIES:
        raise UsageError("a delta goes from a lower version to a higher one, with 1-8 bits and a size in range")
    if len(indices) != len(values) or any(v >> bits for v in values):
        raise UsageError("one value per index, each within the bit width")
    gaps, prev = [], -1
    for index in indices:
        if not prev < index < size:
            raise UsageError("indices must increase strictly and lie within the list")
        gaps.append(index - prev - 1)
        prev = index
    rice = _best_rice(gaps)
    coded = _rice_encode(gaps, values, rice, bits)
    return _cbor.dumps(
        {
            int(DeltaField.ISSUER): issuer,
            int(DeltaField.FROM_VERSION): from_version,
            int(DeltaField.TO_VERSION): to_version,
            int(DeltaField.FROM_DIGEST): bytes(from_digest[:DIGEST_PREFIX]),
            int(DeltaField.TO_DIGEST): bytes(to_digest[:DIGEST_PREFIX]),
            int(DeltaField.BITS): bits,
            int(DeltaField.SIZE): size,
            int(DeltaField.COUNT): len(gaps),
            int(DeltaField.RICE): rice,
            int(DeltaField.CHANGES): coded,
        }
    )


def parse_delta(data: bytes) -> StatusDelta:
    """Decode a delta from untrusted bytes; nothing here proves where it came from (see the module doc).

    Raises:
        ListError: TOO_LARGE, or LIST_MALFORMED (structure, a field out of range, coded changes that end
            early, run past the list or leave bits over).
    """
    if len(data) > MAX_DELTA_BYTES:
        raise ListError(Reason.TOO_LARGE, f"delta over {MAX_DELTA_BYTES} bytes")
    try:
        m = _cbor.loads(data, max_items=32)
    except ValueError as exc:
        raise ListError(Reason.LIST_MALFORMED, f"delta: {exc}") from None
    if not isinstance(m, dict):
        raise ListError(Reason.LIST_MALFORMED, "a delta is a map")
    issuer = _field(m, DeltaField.ISSUER, str)
    from_version, to_version, bits, size, count, rice = (
        _field(m, k, int)
        for k in (
            DeltaField.FROM_VERSION,
            DeltaField.TO_VERSION,
            DeltaField.BITS,
            DeltaField.SIZE,
            DeltaField.COUNT,
            DeltaField.RICE,
        )
    )
    from_digest, to_digest = _field(m, DeltaField.FROM_DIGEST, bytes), _field(m, DeltaField.TO_DIGEST, bytes)
    coded = _field(m, DeltaField.CHANGES, bytes)
    if not 1 <= from_version < to_version or bits not in STATUS_LIST_BITS_ALLOWED or not 0 < size <= MAX_ENTRIES:
        raise ListError(Reason.LIST_MALFORMED, "delta versions, bit width or size out of range")
    if len(from_digest) != DIGEST_PREFIX or len(to_digest) != DIGEST_PREFIX or not 0 <= rice <= MAX_RICE:
        raise ListError(Reason.LIST_MALFORMED, f"digest prefixes must be {DIGEST_PREFIX} bytes, rice 0-{MAX_RICE}")
    # Each change takes at least 1 + rice + bits bits: a count the coded bytes cannot hold is refused
    # before anything is allocated for it.
    if not 0 <= count <= min(MAX_DELTA_CHANGES, size) or count * (1 + rice + bits) > 8 * len(coded):
        raise ListError(Reason.LIST_MALFORMED, f"{count} changes do not fit {len(coded)} coded bytes")
    indices, values = _rice_decode(coded, count, rice, bits, size)
    return StatusDelta(issuer, from_version, to_version, from_digest, to_digest, bits, size, indices, values)


def _field(m: dict[Any, Any], key: DeltaField, typ: type[_T]) -> _T:
    """Raises: ListError (LIST_MALFORMED) when missing or of another type (``bool`` is no ``int``)."""
    value = m.get(int(key))
    if type(value) is not typ:
        raise ListError(Reason.LIST_MALFORMED, f"delta field {key.name.lower()} missing or of the wrong type")
    return value  # type: ignore[no-any-return]


def _best_rice(gaps: list[int]) -> int:
    """The Rice parameter that codes ``gaps`` in the fewest bits (near log2 of the mean gap)."""
    if not gaps:
        return 0
    guess = max(0, (sum(gaps) // len(gaps)).bit_length() - 1)
    candidates = range(max(0, guess - 2), min(MAX_RICE, guess + 2) + 1)
    return min(candidates, key=lambda r: sum((g >> r) for g in gaps) + len(gaps) * (1 + r))


def _rice_encode(gaps: list[int], values: bytes, rice: int, bits: int) -> bytes:
    """Each gap as its quotient in unary (ones, then a zero) and ``rice`` low bits, then the value in
    ``bits`` bits; most significant bit first, zero-padded to a whole byte."""
    low = (1 << rice) - 1
    text = "".join(
        "1" * (g >> rice) + "0" + (format(g & low, f"0{rice}b") if rice else "") + format(v, f"0{bits}b")
        for g, v in zip(gaps, values, strict=True)
    )
    if not text:
        return b""
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def _rice_decode(coded: bytes, count: int, rice: int, bits: int, size: int) -> tuple[array[int], bytes]:
    """Raises: ListError (LIST_MALFORMED) when the bits end early, an index runs past ``size`` or more
    than a byte of padding, or padding that is not zero, is left over."""
    text = format(int.from_bytes(coded, "big"), f"0{8 * len(coded)}b") if coded else ""
    indices: array[int] = array("q")
    values = bytearray()
    pos, prev, end = 0, -1, len(text)
    for _ in range(count):
        stop = text.find("0", pos)
        if stop < 0 or stop + 1 + rice + bits > end:
            raise ListError(Reason.LIST_MALFORMED, "delta changes end early")
        quotient = stop - pos
        pos = stop + 1
        gap = (quotient << rice) | (int(text[pos : pos + rice], 2) if rice else 0)
        pos += rice
        prev += gap + 1
        if prev >= size:
            raise ListError(Reason.LIST_MALFORMED, f"delta changes an index past the list's {size} entries")
        indices.append(prev)
        values.append(int(text[pos : pos + bits], 2))
        pos += bits
    if end - pos >= 8 or "1" in text[pos:]:
        raise ListError(Reason.LIST_MALFORMED, "delta has bits left over after its changes")
    return indices, bytes(values)
