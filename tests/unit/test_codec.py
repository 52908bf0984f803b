"""Unit tests for offrecord.wire.codec: the OTR data types, minimal output, strict input."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import (
    MAX_DATA_LEN,
    MAX_MPI_LEN,
    Reader,
    encode_byte,
    encode_ctr,
    encode_data,
    encode_int,
    encode_mac,
    encode_mpi,
    encode_short,
    int_to_bytes,
)

# --- encoding ------------------------------------------------------------------


def test_fixed_width_integers_are_big_endian() -> None:
    assert encode_byte(0xAB) == b"\xab"
    assert encode_short(0x0102) == b"\x01\x02"
    assert encode_short(0xFFFF) == b"\xff\xff"
    assert encode_int(0x01020304) == b"\x01\x02\x03\x04"
    assert encode_int(0) == b"\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00\x00\x00\x00"),
        (1, b"\x00\x00\x00\x01\x01"),
        (0xFF, b"\x00\x00\x00\x01\xff"),
        (0x100, b"\x00\x00\x00\x02\x01\x00"),
        (0x00FFFF, b"\x00\x00\x00\x02\xff\xff"),
        (1 << 64, b"\x00\x00\x00\x09\x01" + b"\x00" * 8),
    ],
)
def test_mpi_is_minimal(value: int, encoded: bytes) -> None:
    assert encode_mpi(value) == encoded


def test_int_to_bytes_is_minimal_and_rejects_negatives() -> None:
    assert int_to_bytes(0) == b""
    assert int_to_bytes(0x0100) == b"\x01\x00"
    with pytest.raises(ValueError):
        int_to_bytes(-1)


def test_data_is_length_prefixed() -> None:
    assert encode_data(b"") == b"\x00\x00\x00\x00"
    assert encode_data(b"abc") == b"\x00\x00\x00\x03abc"


def test_ctr_and_mac_have_fixed_lengths() -> None:
    assert encode_ctr(b"12345678") == b"12345678"
    assert encode_mac(b"m" * 20) == b"m" * 20
    for bad in (b"1234567", b"123456789"):
        with pytest.raises(ValueError):
            encode_ctr(bad)
    for bad in (b"m" * 19, b"m" * 21):
        with pytest.raises(ValueError):
            encode_mac(bad)


def test_out_of_range_fixed_width_values_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_byte(256)
    with pytest.raises(Exception):  # noqa: B017 - struct.error or OverflowError, either is fine
        encode_short(0x10000)
    with pytest.raises(Exception):  # noqa: B017
        encode_int(1 << 32)


# --- decoding ------------------------------------------------------------------


def test_reader_reads_every_type_in_order() -> None:
    buf = (
        encode_byte(7)
        + encode_short(0x0203)
        + encode_int(0xDEADBEEF)
        + encode_mpi(123456789)
        + encode_data(b"payload")
        + b"CTRCTRCT"
        + b"M" * 20
        + b"tail"
    )
    reader = Reader(buf)
    assert reader.byte() == 7
    assert reader.short() == 0x0203
    assert reader.int32() == 0xDEADBEEF
    assert reader.mpi() == 123456789
    assert reader.data() == b"payload"
    assert reader.ctr() == b"CTRCTRCT"
    assert reader.mac() == b"M" * 20
    assert reader.remaining == 4
    assert reader.consumed() == buf[:-4]
    assert reader.rest() == b"tail"
    assert reader.remaining == 0
    reader.end()


def test_mpi_with_leading_zero_bytes_is_read_as_its_value() -> None:
    # libotr accepts non-minimal MPIs on input; so do we.
    assert Reader(b"\x00\x00\x00\x03\x00\x00\x05").mpi() == 5
    assert Reader(b"\x00\x00\x00\x00").mpi() == 0


@pytest.mark.parametrize(
    ("buf", "read"),
    [
        (b"", lambda r: r.byte()),
        (b"\x01", lambda r: r.short()),
        (b"\x01\x02\x03", lambda r: r.int32()),
        (b"\x00\x00\x00", lambda r: r.mpi()),
        (b"\x00\x00\x00\x02\x01", lambda r: r.mpi()),
        (b"\x00\x00\x00\x05abcd", lambda r: r.data()),
        (b"\xff\xff\xff\xff", lambda r: r.data()),
        (b"1234567", lambda r: r.ctr()),
        (b"m" * 19, lambda r: r.mac()),
        (b"ab", lambda r: r.raw(3, "field")),
    ],
    ids=str.split("byte short int mpi-len mpi-body data-body data-huge ctr mac raw"),
)
def test_truncated_input_raises_remote_protocol_error(
    buf: bytes, read: Callable[[Reader], object]
) -> None:
    reader = Reader(buf)
    with pytest.raises(RemoteProtocolError, match=r"truncated|too long"):
        read(reader)


def test_truncation_error_names_the_field_and_the_message() -> None:
    with pytest.raises(RemoteProtocolError, match=r"D-H Key truncated in g\^y"):
        Reader(b"\x00\x00", "D-H Key").mpi("g^y")


def test_length_ceilings_are_enforced_before_reading() -> None:
    too_long_mpi = encode_int(MAX_MPI_LEN + 1) + b"\x01" * (MAX_MPI_LEN + 1)
    with pytest.raises(RemoteProtocolError, match="too long"):
        Reader(too_long_mpi).mpi()
    # Exactly at the ceiling is fine.
    assert Reader(encode_int(MAX_MPI_LEN) + b"\x01" * MAX_MPI_LEN).mpi() > 0
    with pytest.raises(RemoteProtocolError, match="too long"):
        Reader(encode_int(MAX_DATA_LEN + 1)).data()
    with pytest.raises(RemoteProtocolError, match="too long"):
        Reader(encode_data(b"12345")).data(max_len=4)
    assert Reader(encode_data(b"1234")).data(max_len=4) == b"1234"
    with pytest.raises(RemoteProtocolError, match="too long"):
        Reader(encode_mpi(1 << 40)).mpi(max_len=5)


def test_end_rejects_trailing_bytes() -> None:
    reader = Reader(b"\x01\x02", "thing")
    reader.byte()
    with pytest.raises(RemoteProtocolError, match="thing: 1 unexpected trailing bytes"):
        reader.end()
    reader.byte()
    reader.end()


def test_failed_body_read_stops_after_the_length_prefix() -> None:
    reader = Reader(b"\x00\x00\x00\x09abc")
    with pytest.raises(RemoteProtocolError):
        reader.data()
    # The length prefix was read, the body was not.
    assert reader.position == 4
    assert reader.rest() == b"abc"
