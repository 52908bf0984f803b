"""libotr 4.1.1's own parsers and key derivations, called through ctypes, as
the reference the regression tests compare offrecord against.

Built on :mod:`tests.interop.libgcrypt_ctypes` (which loads and initialises
libgcrypt and libotr); the few extra functions are declared here on that
library handle.  Everything libotr allocates is freed before a call returns.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum

from tests.interop.libgcrypt_ctypes import GCRYMPI_FMT_USG, Libs, available, libs

__all__ = [
    "AuthKeys",
    "FragmentResult",
    "Oracle",
    "SessionKeys",
    "available",
    "oracle",
]

_GCRYCTL_RESET = 4
_DH1536_GROUP_ID = 5
_OTRL_INSTAG_MASTER = 0
_vp = ctypes.c_void_p
_ubuf = ctypes.POINTER(ctypes.c_ubyte)


class FragmentResult(IntEnum):
    """``OtrlFragmentResult`` (proto.h)."""

    UNFRAGMENTED = 0
    INCOMPLETE = 1
    COMPLETE = 2


class _DHKeypair(ctypes.Structure):
    _fields_ = [("groupid", ctypes.c_uint), ("priv", _vp), ("pub", _vp)]


class _DHSessKeys(ctypes.Structure):
    _fields_ = [
        ("sendctr", ctypes.c_ubyte * 16),
        ("rcvctr", ctypes.c_ubyte * 16),
        ("sendenc", _vp),
        ("rcvenc", _vp),
        ("sendmac", _vp),
        ("sendmackey", ctypes.c_ubyte * 20),
        ("sendmacused", ctypes.c_int),
        ("rcvmac", _vp),
        ("rcvmackey", ctypes.c_ubyte * 20),
        ("rcvmacused", ctypes.c_int),
        ("extrakey", ctypes.c_ubyte * 32),
    ]


class _TLV(ctypes.Structure):
    pass


_TLV._fields_ = [
    ("type", ctypes.c_ushort),
    ("len", ctypes.c_ushort),
    ("data", _ubuf),
    ("next", ctypes.POINTER(_TLV)),
]


@dataclass(frozen=True)
class SessionKeys:
    """What ``otrl_dh_session`` derived for one key pair, as seen by the side
    holding the private key, plus what libotr's ciphers made of test data."""

    send_mac_key: bytes = field(repr=False)
    recv_mac_key: bytes = field(repr=False)
    extra_key: bytes = field(repr=False)
    encrypted: bytes = field(repr=False)
    decrypted: bytes = field(repr=False)


@dataclass(frozen=True)
class AuthKeys:
    """What ``otrl_dh_compute_v2_auth_keys`` derived: the session id and the
    results of its ciphers and MACs on test data."""

    ssid: bytes
    c_encrypted: bytes = field(repr=False)
    c_prime_encrypted: bytes = field(repr=False)
    macs: tuple[bytes, bytes, bytes, bytes] = field(repr=False)  # m1, m1', m2, m2'


class Oracle:
    def __init__(self, base: Libs) -> None:
        self._libs = base
        g, o = base.gcry, base.otr
        table: list[tuple[ctypes.CDLL, str, list[object], object]] = [
            (g, "gcry_cipher_ctl", [_vp, ctypes.c_int, _vp, ctypes.c_size_t], ctypes.c_uint),
            (g, "gcry_cipher_setctr", [_vp, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_uint),
            (g, "gcry_cipher_encrypt",
             [_vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
             ctypes.c_uint),
            (g, "gcry_cipher_decrypt",
             [_vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
             ctypes.c_uint),
            (g, "gcry_cipher_close", [_vp], None),
            (g, "gcry_md_reset", [_vp], None),
            (g, "gcry_md_write", [_vp, ctypes.c_char_p, ctypes.c_size_t], None),
            (g, "gcry_md_read", [_vp, ctypes.c_int], _ubuf),
            (g, "gcry_md_close", [_vp], None),
            (o, "otrl_dh_session",
             [ctypes.POINTER(_DHSessKeys), ctypes.POINTER(_DHKeypair), _vp], ctypes.c_uint),
            (o, "otrl_dh_session_free", [ctypes.POINTER(_DHSessKeys)], None),
            (o, "otrl_dh_compute_v2_auth_keys",
             [ctypes.POINTER(_DHKeypair), _vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
              ctypes.POINTER(_vp), ctypes.POINTER(_vp), ctypes.POINTER(_vp),
              ctypes.POINTER(_vp), ctypes.POINTER(_vp), ctypes.POINTER(_vp)],
             ctypes.c_uint),
            (o, "otrl_dh_incctr", [ctypes.c_char_p], None),
            (o, "otrl_base64_otr_decode",
             [ctypes.c_char_p, ctypes.POINTER(_ubuf), ctypes.POINTER(ctypes.c_size_t)],
             ctypes.c_int),
            (o, "otrl_proto_fragment_accumulate",
             [ctypes.POINTER(ctypes.c_char_p), _vp, ctypes.c_char_p], ctypes.c_int),
            (o, "otrl_context_find",
             [_vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint,
              ctypes.c_int, ctypes.POINTER(ctypes.c_int), _vp, _vp], _vp),
            (o, "otrl_tlv_parse", [ctypes.c_char_p, ctypes.c_size_t], ctypes.POINTER(_TLV)),
            (o, "otrl_tlv_free", [ctypes.POINTER(_TLV)], None),
        ]  # fmt: skip
        for lib, name, argtypes, restype in table:
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = restype

    # --- MPIs ------------------------------------------------------------------

    def mpi_bytes(self, value: int) -> bytes:
        """``gcry_mpi_print(USG)``: how libotr serialises an MPI's value."""
        g = self._libs.gcry
        mpi = self._libs.mpi_from_int(value)
        try:
            size = ctypes.c_size_t()
            g.gcry_mpi_print(GCRYMPI_FMT_USG, None, 0, ctypes.byref(size), mpi)
            buf = ctypes.create_string_buffer(max(size.value, 1))
            g.gcry_mpi_print(GCRYMPI_FMT_USG, buf, size.value, ctypes.byref(size), mpi)
            return buf.raw[: size.value]
        finally:
            g.gcry_mpi_release(mpi)

    @contextmanager
    def _keypair(self, secret: int, public: int) -> Iterator[_DHKeypair]:
        kp = _DHKeypair(_DH1536_GROUP_ID, self._libs.mpi_from_int(secret).value,
                        self._libs.mpi_from_int(public).value)  # fmt: skip
        try:
            yield kp
        finally:
            self._libs.gcry.gcry_mpi_release(kp.priv)
            self._libs.gcry.gcry_mpi_release(kp.pub)

    # --- ciphers and MACs --------------------------------------------------------

    def _crypt(self, handle: int, counter: bytes, data: bytes, *, decrypt: bool) -> bytes:
        g = self._libs.gcry
        g.gcry_cipher_ctl(handle, _GCRYCTL_RESET, None, 0)
        if counter:
            self._libs._check("gcry_cipher_setctr", g.gcry_cipher_setctr(handle, counter, 16))
        out = ctypes.create_string_buffer(max(len(data), 1))
        call = g.gcry_cipher_decrypt if decrypt else g.gcry_cipher_encrypt
        self._libs._check("gcry_cipher_crypt", call(handle, out, len(data), data, len(data)))
        return out.raw[: len(data)]

    def _hmac(self, handle: int, data: bytes) -> bytes:
        g = self._libs.gcry
        g.gcry_md_reset(handle)
        g.gcry_md_write(handle, data, len(data))
        return ctypes.string_at(g.gcry_md_read(handle, 0), 32)

    # --- key derivation ------------------------------------------------------------

    def dh_session(
        self, our_secret: int, our_public: int, their_public: int, counter: bytes, data: bytes
    ) -> SessionKeys:
        """``otrl_dh_session`` for our key pair and their public key; ``data``
        is encrypted with the send cipher and decrypted with the receive
        cipher, each with the 16-byte initial counter block ``counter``
        exactly as ``otrl_proto_create_data`` / ``otrl_proto_accept_data`` set it."""
        o = self._libs.otr
        their = self._libs.mpi_from_int(their_public)
        sess = _DHSessKeys()
        try:
            with self._keypair(our_secret, our_public) as kp:
                self._libs._check(
                    "otrl_dh_session",
                    o.otrl_dh_session(ctypes.byref(sess), ctypes.byref(kp), their),
                )
            try:
                return SessionKeys(
                    send_mac_key=bytes(sess.sendmackey),
                    recv_mac_key=bytes(sess.rcvmackey),
                    extra_key=bytes(sess.extrakey),
                    encrypted=self._crypt(sess.sendenc, counter, data, decrypt=False),
                    decrypted=self._crypt(sess.rcvenc, counter, data, decrypt=True),
                )
            finally:
                o.otrl_dh_session_free(ctypes.byref(sess))
        finally:
            self._libs.gcry.gcry_mpi_release(their)

    def auth_keys(self, our_secret: int, our_public: int, their_public: int,
                  data: bytes) -> AuthKeys:  # fmt: skip
        """``otrl_dh_compute_v2_auth_keys``; the AES keys c and c' encrypt
        ``data`` with a zero counter (as in the AKE), the four MAC keys
        HMAC-SHA256 it."""
        g, o = self._libs.gcry, self._libs.otr
        their = self._libs.mpi_from_int(their_public)
        ssid = ctypes.create_string_buffer(20)
        ssid_len = ctypes.c_size_t(20)
        handles = [_vp() for _ in range(6)]
        try:
            with self._keypair(our_secret, our_public) as kp:
                self._libs._check(
                    "otrl_dh_compute_v2_auth_keys",
                    o.otrl_dh_compute_v2_auth_keys(
                        ctypes.byref(kp), their, ssid, ctypes.byref(ssid_len),
                        *(ctypes.byref(h) for h in handles),
                    ),
                )  # fmt: skip
            enc_c, enc_cp, m1, m1p, m2, m2p = (h.value or 0 for h in handles)
            return AuthKeys(
                ssid=ssid.raw[: ssid_len.value],
                c_encrypted=self._crypt(enc_c, b"", data, decrypt=False),
                c_prime_encrypted=self._crypt(enc_cp, b"", data, decrypt=False),
                macs=(self._hmac(m1, data), self._hmac(m1p, data),
                      self._hmac(m2, data), self._hmac(m2p, data)),
            )  # fmt: skip
        finally:
            for i, h in enumerate(handles):
                if h.value:
                    (g.gcry_cipher_close if i < 2 else g.gcry_md_close)(h)
            g.gcry_mpi_release(their)

    def incremented_counter(self, top: bytes) -> bytes:
        """``otrl_dh_incctr`` on a 16-byte counter block whose top half is ``top``."""
        block = ctypes.create_string_buffer(top + bytes(8), 16)
        self._libs.otr.otrl_dh_incctr(block)
        return block.raw[:16]

    # --- parsers -----------------------------------------------------------------------

    def base64_otr_decode(self, message: bytes) -> bytes | None:
        """``otrl_base64_otr_decode``: the decoded body, or None if libotr refuses."""
        buf = _ubuf()
        length = ctypes.c_size_t()
        result = self._libs.otr.otrl_base64_otr_decode(message, ctypes.byref(buf),
                                                       ctypes.byref(length))  # fmt: skip
        try:
            return ctypes.string_at(buf, length.value) if result == 0 else None
        finally:
            if buf:
                self._libs.libc.free(buf)

    def tlv_count(self, serialized: bytes) -> int:
        """How many records ``otrl_tlv_parse`` reads from ``serialized``."""
        o = self._libs.otr
        head = o.otrl_tlv_parse(serialized, len(serialized))
        count, node = 0, head
        while node:
            count += 1
            node = node.contents.next
        if head:
            o.otrl_tlv_free(head)
        return count

    def accumulate(self, fragments: list[bytes]) -> list[tuple[FragmentResult, bytes | None]]:
        """Feed fragments in order to ``otrl_proto_fragment_accumulate`` on a
        fresh connection context; for each, the result and any completed message."""
        o = self._libs.otr
        out: list[tuple[FragmentResult, bytes | None]] = []
        with self._libs.userstate() as us:
            ctx = o.otrl_context_find(us, b"peer", b"me", b"prpl", _OTRL_INSTAG_MASTER, 1,
                                      None, None, None)  # fmt: skip
            assert ctx, "otrl_context_find failed"
            for fragment in fragments:
                complete = ctypes.c_char_p()
                result = FragmentResult(
                    o.otrl_proto_fragment_accumulate(ctypes.byref(complete), ctx, fragment)
                )
                text: bytes | None = None
                if result is FragmentResult.COMPLETE:
                    text = complete.value
                    self._libs.libc.free(ctypes.cast(complete, _vp))
                out.append((result, text))
        return out


_ORACLE: Oracle | None = None


def oracle() -> Oracle:
    global _ORACLE
    if _ORACLE is None:
        _ORACLE = Oracle(libs())
    return _ORACLE
