"""The OTR data types (spec "Data types"): BYTE, SHORT, INT, MPI, DATA, CTR, MAC.

Output is always minimal (MPIs carry no leading zero bytes, as fingerprints and
MACs depend on it).  Input is strict about structure — every length is checked
against what is left and against an explicit ceiling, trailing bytes are an
error when the caller says so — and lenient where libotr is: an MPI with
leading zero bytes is read as its value, because libotr accepts it and some
implementations once sent them.

:class:`Reader` raises only :class:`~offrecord.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import struct

from offrecord.errors import RemoteProtocolError

__all__ = [
    "MAX_DATA_LEN",
    "MAX_MPI_LEN",
    "Reader",
    "encode_byte",
    "encode_ctr",
    "encode_data",
    "encode_int",
    "encode_mac",
    "encode_mpi",
    "encode_short",
    "int_to_bytes",
]

# No OTR v3 field is legitimately larger than these; they bound memory before
# any allocation happens.  An MPI in OTR is at most a 1536-bit group element or
# a 1024-bit DSA parameter (192 / 128 bytes), so 1024 bytes is generous.
MAX_MPI_LEN = 1024
# DATA carries an encrypted message or revealed MAC keys; the whole decoded
# message is already bounded by the envelope, this is a second line of defence.
MAX_DATA_LEN = 16 * 1024 * 1024

_SHORT = struct.Struct(">H")
_INT = struct.Struct(">I")


def int_to_bytes(value: int) -> bytes:
    """Big-endian bytes of a non-negative integer, minimal (zero is empty)."""
    if value < 0:
        raise ValueError("negative integers have no OTR encoding")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def encode_byte(value: int) -> bytes:
    return bytes((value,))


def encode_short(value: int) -> bytes:
    return _SHORT.pack(value)


def encode_int(value: int) -> bytes:
    return _INT.pack(value)


def encode_mpi(value: int) -> bytes:
    raw = int_to_bytes(value)
    return _INT.pack(len(raw)) + raw


def encode_data(value: bytes) -> bytes:
    return _INT.pack(len(value)) + value


def encode_ctr(value: bytes) -> bytes:
    if len(value) != 8:
        raise ValueError("CTR is 8 bytes")
    return value


def encode_mac(value: bytes) -> bytes:
    if len(value) != 20:
        raise ValueError("MAC is 20 bytes")
    return value


class Reader:
    """Reads OTR data types from a byte string, front to back."""

    __slots__ = ("_buf", "_pos", "_what")

    def __init__(self, buf: bytes, what: str = "message") -> None:
        self._buf = buf
        self._pos = 0
        self._what = what

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int, field: str) -> bytes:
        if n > len(self._buf) - self._pos:
            raise RemoteProtocolError(f"{self._what} truncated in {field}")
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def byte(self, field: str = "BYTE") -> int:
        return self._take(1, field)[0]

    def short(self, field: str = "SHORT") -> int:
        value: int = _SHORT.unpack(self._take(2, field))[0]
        return value

    def int32(self, field: str = "INT") -> int:
        value: int = _INT.unpack(self._take(4, field))[0]
        return value

    def mpi(self, field: str = "MPI", max_len: int = MAX_MPI_LEN) -> int:
        length = self.int32(field)
        if length > max_len:
            raise RemoteProtocolError(f"{self._what}: {field} is too long ({length} bytes)")
        return int.from_bytes(self._take(length, field), "big")

    def data(self, field: str = "DATA", max_len: int = MAX_DATA_LEN) -> bytes:
        length = self.int32(field)
        if length > max_len:
            raise RemoteProtocolError(f"{self._what}: {field} is too long ({length} bytes)")
        return self._take(length, field)

    def raw(self, n: int, field: str) -> bytes:
        return self._take(n, field)

    def ctr(self, field: str = "CTR") -> bytes:
        return self._take(8, field)

    def mac(self, field: str = "MAC") -> bytes:
        return self._take(20, field)

    def rest(self) -> bytes:
        chunk = self._buf[self._pos :]
        self._pos = len(self._buf)
        return chunk

    def consumed(self) -> bytes:
        """Everything read so far (used for MACs over a message prefix)."""
        return self._buf[: self._pos]

    def end(self) -> None:
        """Require that nothing is left."""
        if self._pos != len(self._buf):
            raise RemoteProtocolError(
                f"{self._what}: {len(self._buf) - self._pos} unexpected trailing bytes"
            )
