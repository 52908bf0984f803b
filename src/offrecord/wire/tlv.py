"""TLV records carried after the NUL in a decrypted data message (spec "Data Message")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import Reader, encode_short

__all__ = ["MAX_TLVS", "TLV", "TLVType", "decode_tlvs", "encode_tlvs", "split_plaintext"]

# A decrypted message is bounded by the fragment and envelope limits already;
# this caps the work a flood of empty TLVs can cause (potr once fell over).
MAX_TLVS = 20_000


class TLVType(IntEnum):
    PADDING = 0
    DISCONNECTED = 1
    SMP1 = 2
    SMP2 = 3
    SMP3 = 4
    SMP4 = 5
    SMP_ABORT = 6
    SMP1Q = 7
    EXTRA_SYMMETRIC_KEY = 8


@dataclass(frozen=True, slots=True)
class TLV:
    type: int
    value: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFFFF:
            raise ValueError("TLV type is a SHORT")
        if len(self.value) > 0xFFFF:
            raise ValueError("TLV value is at most 65535 bytes")

    def __repr__(self) -> str:
        # Values may carry secrets-derived data (SMP) or user data: show sizes only.
        return f"TLV(type={self.type}, {len(self.value)} bytes)"


def encode_tlvs(tlvs: list[TLV] | tuple[TLV, ...]) -> bytes:
    return b"".join(encode_short(t.type) + encode_short(len(t.value)) + t.value for t in tlvs)


def decode_tlvs(buf: bytes) -> tuple[TLV, ...]:
    """Parse a run of TLV records; a record that overruns the buffer is an error."""
    reader = Reader(buf, "TLV list")
    out: list[TLV] = []
    while reader.remaining:
        if len(out) >= MAX_TLVS:
            raise RemoteProtocolError("too many TLV records")
        kind = reader.short("TLV type")
        length = reader.short("TLV length")
        out.append(TLV(kind, reader.raw(length, "TLV value")))
    return tuple(out)


def split_plaintext(plain: bytes) -> tuple[bytes, tuple[TLV, ...]]:
    """Split a decrypted payload into the human-readable part and its TLVs."""
    nul = plain.find(b"\x00")
    if nul < 0:
        return plain, ()
    return plain[:nul], decode_tlvs(plain[nul + 1 :])
