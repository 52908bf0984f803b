"""DSA against the real libotr 4.1.1 / libgcrypt: signing convention and fingerprints.

What libotr does (privkey.c): ``otrl_privkey_sign`` scans the signed bytes
(the 32-byte M_A / M_B) as an *unsigned* MPI and passes ``(%m)`` — a plain
MPI, no ``(data (flags ...))`` — to ``gcry_pk_sign``.  libgcrypt's DSA uses a
non-opaque input MPI as-is in its arithmetic modulo q, so the value is reduced
modulo q, not truncated and not hashed.  r and s are written as 20-byte
big-endian, zero-padded halves of a fixed 40-byte buffer.
``otrl_privkey_verify`` requires exactly 40 bytes and mirrors that.

These tests drive those very functions through ctypes.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from offrecord.crypto.dsa import (
    DSAPrivateKey,
    DSAPublicKey,
    fingerprint_hex,
    format_fingerprint,
    generate_private_key,
)
from offrecord.wire.codec import Reader
from tests.interop.libgcrypt_ctypes import (
    GPG_ERR_BAD_SIGNATURE,
    GPG_ERR_CODE_MASK,
    Libs,
    available,
    libs,
)

_REASON = available()
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(_REASON is not None, reason=f"libotr/libgcrypt unavailable: {_REASON}"),
]

ACCOUNT = "alice@example.org"
PROTOCOL = "prpl-jabber"


# --- a minimal reader for libotr's private-key S-expression file -------------

_TOKEN = re.compile(
    rb"""\s*(?:
        (?P<open>\()
      | (?P<close>\))
      | "(?P<string>(?:[^"\\]|\\.)*)"
      | \#(?P<hex>[0-9A-Fa-f\s]*)\#
      | (?P<bare>[^\s()"\#|]+)
    )""",
    re.VERBOSE,
)

SExp = bytes | list["SExp"]


def parse_sexp(text: bytes) -> SExp:
    """Parse the advanced-format S-expressions libotr writes (lists, tokens,
    quoted strings, #hex#).  Just enough for its key file."""
    stack: list[list[SExp]] = [[]]
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == b"":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"unparsable S-expression at offset {pos}")
        pos = match.end()
        if match.group("open") is not None:
            stack.append([])
        elif match.group("close") is not None:
            done = stack.pop()
            stack[-1].append(done)
        elif match.group("string") is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", match.group("string")))
        elif match.group("hex") is not None:
            stack[-1].append(bytes.fromhex(re.sub(rb"\s", b"", match.group("hex")).decode()))
        else:
            stack[-1].append(match.group("bare"))
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError("unbalanced S-expression")
    return stack[0][0]


def _find(node: SExp, name: bytes) -> list[SExp]:
    assert isinstance(node, list)
    for child in node:
        if isinstance(child, list) and child and child[0] == name:
            return child
    raise KeyError(name)


def _value(node: SExp, name: bytes) -> bytes:
    found = _find(node, name)
    value = found[1]
    assert isinstance(value, bytes)
    return value


def read_libotr_keyfile(path: Path) -> dict[tuple[str, str], DSAPrivateKey]:
    root = parse_sexp(path.read_bytes())
    assert isinstance(root, list) and root[0] == b"privkeys"
    keys: dict[tuple[str, str], DSAPrivateKey] = {}
    for account in root[1:]:
        assert isinstance(account, list) and account[0] == b"account"
        name = _value(account, b"name").decode()
        protocol = _value(account, b"protocol").decode()
        dsa = _find(_find(account, b"private-key"), b"dsa")
        p, q, g, y, x = (
            int.from_bytes(_value(dsa, t), "big") for t in (b"p", b"q", b"g", b"y", b"x")
        )
        keys[(name, protocol)] = DSAPrivateKey(p, q, g, y, x)
    return keys


def _std_hex(value: int) -> str:
    # libgcrypt's signed (STD) form: a leading 00 when the top bit is set.
    return (value.to_bytes(value.bit_length() // 8 + 1, "big")).hex().upper()


def write_libotr_keyfile(path: Path, key: DSAPrivateKey, account: str, protocol: str) -> None:
    params = "".join(
        f"  ({n} #{_std_hex(v)}#)\n"
        for n, v in (("p", key.p), ("q", key.q), ("g", key.g), ("y", key.y), ("x", key.x))
    )
    path.write_text(
        f'(privkeys\n (account\n(name "{account}")\n(protocol {protocol})\n'
        f"(private-key \n (dsa \n{params}  )\n )\n )\n)\n"
    )


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lib() -> Libs:
    return libs()


@pytest.fixture(scope="module")
def libotr_keyfile(lib: Libs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("libotr") / "otr.private_key"
    with lib.userstate() as us:
        lib.privkey_generate(us, str(path), ACCOUNT, PROTOCOL)
    return path


@pytest.fixture
def libotr_user(lib: Libs, libotr_keyfile: Path) -> Iterator[int]:
    with lib.userstate() as us:
        lib.privkey_read(us, str(libotr_keyfile))
        yield us


@pytest.fixture(scope="module")
def libotr_key(libotr_keyfile: Path) -> DSAPrivateKey:
    return read_libotr_keyfile(libotr_keyfile)[(ACCOUNT, PROTOCOL)]


@pytest.fixture(scope="module")
def our_key() -> DSAPrivateKey:
    return generate_private_key(random.Random(0x0DD).randbytes)


def _messages(seed: int, count: int = 12) -> list[bytes]:
    rng = random.Random(seed)
    out = [rng.randbytes(32) for _ in range(count)]
    out.append(b"\x00" * 8 + rng.randbytes(24))  # leading zero bytes
    out.append(b"\xff" * 32)  # far above q
    out.append(b"\x00" * 31 + b"\x01")  # tiny value
    return out


def _split(signature: bytes) -> tuple[int, int]:
    return int.from_bytes(signature[:20], "big"), int.from_bytes(signature[20:], "big")


def _pub(key: DSAPrivateKey | DSAPublicKey) -> tuple[int, int, int, int]:
    return key.p, key.q, key.g, key.y


# --- (1) our signatures verify in libgcrypt and libotr ------------------------------


@pytest.mark.parametrize("which", ["ours", "libotr"])
def test_our_signature_verifies_in_libgcrypt(
    lib: Libs, which: str, our_key: DSAPrivateKey, libotr_key: DSAPrivateKey
) -> None:
    key = our_key if which == "ours" else libotr_key
    for message in _messages(1):
        signature = key.sign(message)
        r, s = _split(signature)
        assert lib.pk_verify_libotr_form(_pub(key), message, r, s) == 0
        assert lib.privkey_verify(_pub(key), message, signature) == 0
        # and libgcrypt really checks: a different message is refused
        other = bytes([message[0] ^ 1]) + message[1:]
        err = lib.pk_verify_libotr_form(_pub(key), other, r, s)
        assert err & GPG_ERR_CODE_MASK == GPG_ERR_BAD_SIGNATURE


def test_libotr_rejects_truncation_convention(lib: Libs, our_key: DSAPrivateKey) -> None:
    # A FIPS-186-style signer (leftmost 160 bits) would not interoperate.
    message = _messages(2)[0]
    truncated = int.from_bytes(message[:20], "big").to_bytes(20, "big")
    signature = our_key.sign(truncated)
    assert lib.privkey_verify(_pub(our_key), message, signature) != 0


def test_libotr_sees_representative_modulo_q(lib: Libs, our_key: DSAPrivateKey) -> None:
    # Sign the already-reduced 20-byte value; libotr must accept it for the
    # full 32-byte message, since it reduces modulo q as well.
    message = _messages(3)[0]
    reduced = (int.from_bytes(message, "big") % our_key.q).to_bytes(20, "big")
    assert lib.privkey_verify(_pub(our_key), message, our_key.sign(reduced)) == 0


# --- (2) libgcrypt's / libotr's signatures verify with ours ------------------------


def test_libgcrypt_signature_verifies_with_ours(lib: Libs, our_key: DSAPrivateKey) -> None:
    private = (our_key.p, our_key.q, our_key.g, our_key.y, our_key.x)
    for message in _messages(4):
        r, s = lib.pk_sign_libotr_form(private, message)
        signature = r.to_bytes(20, "big") + s.to_bytes(20, "big")
        assert our_key.public.verify(message, signature)
        assert not our_key.public.verify(bytes([message[0] ^ 0x80]) + message[1:], signature)


def test_otrl_privkey_sign_verifies_with_ours(
    lib: Libs, libotr_user: int, libotr_key: DSAPrivateKey
) -> None:
    handle = lib.privkey_find(libotr_user, ACCOUNT, PROTOCOL)
    public = libotr_key.public
    for message in [*_messages(5), os.urandom(32)]:
        signature = lib.privkey_sign(handle, message)
        assert len(signature) == 40
        assert public.verify(message, signature)
        assert not public.verify(message[:-1] + bytes([message[-1] ^ 1]), signature)


def test_otrl_sign_of_our_key_verifies_with_ours(
    lib: Libs, our_key: DSAPrivateKey, tmp_path: Path
) -> None:
    # Our generated key, stored in libotr's format, loads into libotr and its
    # signatures verify with our code (and libotr derives our fingerprint).
    path = tmp_path / "ours.private_key"
    write_libotr_keyfile(path, our_key, "bob@example.org", "prpl-irc")
    with lib.userstate() as us:
        lib.privkey_read(us, str(path))
        handle = lib.privkey_find(us, "bob@example.org", "prpl-irc")
        assert lib.privkey_pubkey_data(handle) == our_key.public.encode()[2:]
        human = lib.privkey_human_fingerprint(us, "bob@example.org", "prpl-irc")
        assert human == format_fingerprint(our_key.fingerprint())
        for message in _messages(6, count=4):
            assert our_key.public.verify(message, lib.privkey_sign(handle, message))


# --- (3) fingerprints of a libotr-generated key ----------------------------------------


def test_fingerprint_of_libotr_key(lib: Libs, libotr_user: int, libotr_key: DSAPrivateKey) -> None:
    human = lib.privkey_human_fingerprint(libotr_user, ACCOUNT, PROTOCOL)
    ours = libotr_key.public.fingerprint()
    assert format_fingerprint(ours) == human
    assert fingerprint_hex(ours) == human.replace(" ", "")


def test_pubkey_encoding_matches_libotr(
    lib: Libs, libotr_user: int, libotr_key: DSAPrivateKey
) -> None:
    handle = lib.privkey_find(libotr_user, ACCOUNT, PROTOCOL)
    assert handle.contents.pubkey_type == 0
    raw = lib.privkey_pubkey_data(handle)
    assert libotr_key.public.encode() == b"\x00\x00" + raw
    assert DSAPublicKey.decode(Reader(b"\x00\x00" + raw)) == libotr_key.public


def test_libotr_key_is_a_libgcrypt_dsa1024_key(libotr_key: DSAPrivateKey) -> None:
    assert libotr_key.p.bit_length() == 1024
    assert libotr_key.q.bit_length() == 160
    assert (libotr_key.p - 1) % libotr_key.q == 0
    assert pow(libotr_key.g, libotr_key.x, libotr_key.p) == libotr_key.y


def test_keyfile_parser_handles_libotr_syntax() -> None:
    text = b'(privkeys\n (account\n(name "a\\"b")\n(protocol prpl-x)\n(n #00 0A#)))'
    assert parse_sexp(text) == [
        b"privkeys",
        [b"account", [b"name", b'a"b'], [b"protocol", b"prpl-x"], [b"n", b"\x00\x0a"]],
    ]
