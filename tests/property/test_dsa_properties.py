"""Property tests for offrecord.crypto.dsa."""

from __future__ import annotations

import contextlib
import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from offrecord.crypto.dsa import (
    SIGNATURE_LENGTH,
    DSAPrivateKey,
    DSAPublicKey,
    generate_private_key,
)
from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import Reader

KEY: DSAPrivateKey = generate_private_key(random.Random(0x07E).randbytes)
OTHER: DSAPrivateKey = generate_private_key(random.Random(0x07F).randbytes)

messages = st.binary(min_size=32, max_size=32)


@given(message=messages)
def test_sign_then_verify(message: bytes) -> None:
    signature = KEY.sign(message)
    assert len(signature) == SIGNATURE_LENGTH
    assert KEY.public.verify(message, signature)
    assert KEY.sign(message) == signature
    assert not OTHER.public.verify(message, signature)


@given(message=st.binary(max_size=64))
def test_sign_then_verify_any_length(message: bytes) -> None:
    assert KEY.public.verify(message, KEY.sign(message))


@given(message=messages, other=messages)
def test_signature_does_not_transfer(message: bytes, other: bytes) -> None:
    q = KEY.q
    same = int.from_bytes(message, "big") % q == int.from_bytes(other, "big") % q
    assert KEY.public.verify(other, KEY.sign(message)) == same


@given(message=messages, position=st.integers(0, SIGNATURE_LENGTH - 1), flip=st.integers(1, 255))
def test_tampered_signature_fails(message: bytes, position: int, flip: int) -> None:
    tampered = bytearray(KEY.sign(message))
    tampered[position] ^= flip
    assert not KEY.public.verify(message, bytes(tampered))


@given(message=messages, multiple=st.integers(0, 2**95))
def test_representative_is_modulo_q(message: bytes, multiple: int) -> None:
    value = int.from_bytes(message, "big") % KEY.q + multiple * KEY.q
    assume(value.bit_length() <= 256)
    assert KEY.sign(value.to_bytes(32, "big")) == KEY.sign(message)


@given(message=messages, signature=st.binary(max_size=2 * SIGNATURE_LENGTH))
def test_verify_never_raises(message: bytes, signature: bytes) -> None:
    assert KEY.public.verify(message, signature) in (True, False)


@settings(max_examples=50)
@given(
    p=st.integers(3, 2**4096 - 1),
    q=st.integers(2, 2**160 - 1),
    data=st.data(),
)
def test_encode_decode_roundtrip(p: int, q: int, data: st.DataObject) -> None:
    g = data.draw(st.integers(2, p - 1))
    y = data.draw(st.integers(2, p - 1))
    key = DSAPublicKey(p, q, g, y)
    assert DSAPublicKey.decode(Reader(key.encode())) == key


@given(
    wire=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda tail: b"\x00\x00" + tail),
    )
)
def test_decode_raises_only_remote_protocol_error(wire: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        DSAPublicKey.decode(Reader(wire))
