"""ctypes bindings to the installed libotr 4.1.1 (libotr.so.5): the key,
fingerprint and instance-tag functions the storage interop tests drive.

Strings cross the boundary as bytes (C strings); fingerprints as 20 raw
bytes.  Every user state is freed by :meth:`LibOTR.userstate`'s context
manager.  :func:`load` returns ``None`` when the library is missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "GCRYSEXP_FMT_ADVANCED",
    "GCRYSEXP_FMT_CANON",
    "LibOTR",
    "LibOTRError",
    "UserState",
    "load",
]

GCRYSEXP_FMT_CANON = 1
GCRYSEXP_FMT_ADVANCED = 3

OTRL_VERSION = (4, 1, 1)
OTRL_INSTAG_MASTER = 0
_FPRINT_HUMAN_LEN = 45
_GPG_ERR_CODE_MASK = 0xFFFF


class LibOTRError(Exception):
    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} failed: gcry error {code:#x} (code {code & _GPG_ERR_CODE_MASK})")
        self.code = code


class _Fingerprint(ctypes.Structure):
    pass


_Fingerprint._fields_ = [
    ("next", ctypes.POINTER(_Fingerprint)),
    ("tous", ctypes.c_void_p),
    ("fingerprint", ctypes.POINTER(ctypes.c_ubyte)),
    ("context", ctypes.c_void_p),
    ("trust", ctypes.c_char_p),
]


class _InsTag(ctypes.Structure):
    _fields_ = [
        ("next", ctypes.c_void_p),
        ("tous", ctypes.c_void_p),
        ("accountname", ctypes.c_char_p),
        ("protocol", ctypes.c_char_p),
        ("instag", ctypes.c_uint),
    ]


class _PrivKey(ctypes.Structure):
    _fields_ = [
        ("next", ctypes.c_void_p),
        ("tous", ctypes.c_void_p),
        ("accountname", ctypes.c_char_p),
        ("protocol", ctypes.c_char_p),
        ("pubkey_type", ctypes.c_ushort),
        ("privkey", ctypes.c_void_p),
        ("pubkey_data", ctypes.POINTER(ctypes.c_ubyte)),
        ("pubkey_datalen", ctypes.c_size_t),
    ]


_APP_DATA_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


def _path(path: str | os.PathLike[str]) -> bytes:
    return os.fsencode(path)


class UserState:
    """One ``OtrlUserState``."""

    def __init__(self, lib: LibOTR, handle: int) -> None:
        self._lib = lib
        self._c = lib._c
        self.handle = ctypes.c_void_p(handle)

    def _check(self, what: str, err: int) -> None:
        if err:
            raise LibOTRError(what, err)

    # Private keys

    def privkey_generate(
        self, filename: str | os.PathLike[str], account: bytes, protocol: bytes
    ) -> None:
        err = self._c.otrl_privkey_generate(self.handle, _path(filename), account, protocol)
        self._check("otrl_privkey_generate", err)

    def privkey_read(self, filename: str | os.PathLike[str]) -> None:
        self._check("otrl_privkey_read", self._c.otrl_privkey_read(self.handle, _path(filename)))

    def privkey_fingerprint_raw(self, account: bytes, protocol: bytes) -> bytes | None:
        buf = (ctypes.c_ubyte * 20)()
        result = self._c.otrl_privkey_fingerprint_raw(self.handle, buf, account, protocol)
        return bytes(buf) if result else None

    def privkey_fingerprint(self, account: bytes, protocol: bytes) -> str | None:
        buf = ctypes.create_string_buffer(_FPRINT_HUMAN_LEN)
        result = self._c.otrl_privkey_fingerprint(self.handle, buf, account, protocol)
        return buf.value.decode("ascii") if result else None

    def privkey_pubkey_data(self, account: bytes, protocol: bytes) -> bytes | None:
        found = self._c.otrl_privkey_find(self.handle, account, protocol)
        if not found:
            return None
        key = found.contents
        return ctypes.string_at(key.pubkey_data, key.pubkey_datalen)

    def privkey_sign(self, account: bytes, protocol: bytes, data: bytes) -> bytes:
        found = self._c.otrl_privkey_find(self.handle, account, protocol)
        if not found:
            raise LookupError("no such private key")
        sig = ctypes.POINTER(ctypes.c_ubyte)()
        siglen = ctypes.c_size_t()
        err = self._c.otrl_privkey_sign(
            ctypes.byref(sig), ctypes.byref(siglen), found, data, len(data)
        )
        self._check("otrl_privkey_sign", err)
        try:
            return ctypes.string_at(sig, siglen.value)
        finally:
            self._lib._libc.free(sig)

    # Fingerprints

    def read_fingerprints(self, filename: str | os.PathLike[str]) -> None:
        err = self._c.otrl_privkey_read_fingerprints(self.handle, _path(filename), None, None)
        self._check("otrl_privkey_read_fingerprints", err)

    def write_fingerprints(self, filename: str | os.PathLike[str]) -> None:
        err = self._c.otrl_privkey_write_fingerprints(self.handle, _path(filename))
        self._check("otrl_privkey_write_fingerprints", err)

    def _context(self, username: bytes, account: bytes, protocol: bytes, add: bool) -> int | None:
        ctx: int | None = self._c.otrl_context_find(
            self.handle,
            username,
            account,
            protocol,
            OTRL_INSTAG_MASTER,
            1 if add else 0,
            None,
            _APP_DATA_CB(),
            None,
        )
        return ctx

    def add_fingerprint(
        self,
        username: bytes,
        account: bytes,
        protocol: bytes,
        fingerprint: bytes,
        trust: bytes | None,
    ) -> None:
        """What a client does on a new fingerprint: find/create the master
        context, add the fingerprint, set its trust."""
        ctx = self._context(username, account, protocol, add=True)
        assert ctx
        raw = (ctypes.c_ubyte * 20).from_buffer_copy(fingerprint)
        fng = self._c.otrl_context_find_fingerprint(ctypes.c_void_p(ctx), raw, 1, None)
        assert fng
        self._c.otrl_context_set_trust(fng, trust)

    def fingerprint_trust(
        self, username: bytes, account: bytes, protocol: bytes, fingerprint: bytes
    ) -> bytes | None:
        """The trust string of a known fingerprint (``b""`` for none set);
        raises :class:`LookupError` if libotr does not know it."""
        ctx = self._context(username, account, protocol, add=False)
        if not ctx:
            raise LookupError("no such context")
        raw = (ctypes.c_ubyte * 20).from_buffer_copy(fingerprint)
        fng = self._c.otrl_context_find_fingerprint(ctypes.c_void_p(ctx), raw, 0, None)
        if not fng:
            raise LookupError("no such fingerprint")
        trust: bytes | None = fng.contents.trust
        return b"" if trust is None else trust

    # Instance tags

    def instag_generate(
        self, filename: str | os.PathLike[str], account: bytes, protocol: bytes
    ) -> None:
        err = self._c.otrl_instag_generate(self.handle, _path(filename), account, protocol)
        self._check("otrl_instag_generate", err)

    def instag_read(self, filename: str | os.PathLike[str]) -> None:
        self._check("otrl_instag_read", self._c.otrl_instag_read(self.handle, _path(filename)))

    def instag_write(self, filename: str | os.PathLike[str]) -> None:
        self._check("otrl_instag_write", self._c.otrl_instag_write(self.handle, _path(filename)))

    def instag_find(self, account: bytes, protocol: bytes) -> int | None:
        found = self._c.otrl_instag_find(self.handle, account, protocol)
        if not found:
            return None
        tag: int = found.contents.instag
        return tag


class LibOTR:
    """The loaded library, initialised once with ``otrl_init(4, 1, 1)``."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        self._c = cdll
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self._libc.free.argtypes = [ctypes.c_void_p]
        self._libc.free.restype = None
        self._declare()
        err = self._c.otrl_init(*OTRL_VERSION)
        if err:
            raise LibOTRError("otrl_init", err)

    def sexp_reprint(self, text: bytes, mode: int = GCRYSEXP_FMT_ADVANCED) -> bytes | None:
        """libgcrypt's own reading of ``text`` (``gcry_sexp_new``) printed back
        with ``gcry_sexp_sprint``; ``None`` if libgcrypt refuses the text."""
        sexp = ctypes.c_void_p()
        err = self._c.gcry_sexp_new(ctypes.byref(sexp), text, len(text), 0)
        if err:
            return None
        if not sexp.value:
            return b""  # libgcrypt reads "()" and "" as no expression at all
        try:
            size = self._c.gcry_sexp_sprint(sexp, mode, None, 0)
            buf = ctypes.create_string_buffer(size)
            written = self._c.gcry_sexp_sprint(sexp, mode, buf, size)
            assert written, "gcry_sexp_sprint buffer too small"
            return buf.raw[:written]
        finally:
            self._c.gcry_sexp_release(sexp)

    def _declare(self) -> None:
        c = self._c
        vp, cp, uint = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint
        ubuf = ctypes.POINTER(ctypes.c_ubyte)
        table: dict[str, tuple[list[Any], Any]] = {
            "otrl_init": ([uint, uint, uint], uint),
            "otrl_userstate_create": ([], vp),
            "otrl_userstate_free": ([vp], None),
            "otrl_privkey_generate": ([vp, cp, cp, cp], uint),
            "otrl_privkey_read": ([vp, cp], uint),
            "otrl_privkey_fingerprint": ([vp, cp, cp, cp], cp),
            "otrl_privkey_fingerprint_raw": ([vp, ubuf, cp, cp], ubuf),
            "otrl_privkey_find": ([vp, cp, cp], ctypes.POINTER(_PrivKey)),
            "otrl_privkey_sign": (
                [
                    ctypes.POINTER(ubuf),
                    ctypes.POINTER(ctypes.c_size_t),
                    ctypes.POINTER(_PrivKey),
                    cp,
                    ctypes.c_size_t,
                ],
                uint,
            ),
            "otrl_privkey_read_fingerprints": ([vp, cp, vp, vp], uint),
            "otrl_privkey_write_fingerprints": ([vp, cp], uint),
            "otrl_context_find": (
                [
                    vp,
                    cp,
                    cp,
                    cp,
                    uint,
                    ctypes.c_int,
                    ctypes.POINTER(ctypes.c_int),
                    _APP_DATA_CB,
                    vp,
                ],
                vp,
            ),
            "otrl_context_find_fingerprint": (
                [vp, ubuf, ctypes.c_int, ctypes.POINTER(ctypes.c_int)],
                ctypes.POINTER(_Fingerprint),
            ),
            "otrl_context_set_trust": ([ctypes.POINTER(_Fingerprint), cp], None),
            "otrl_instag_generate": ([vp, cp, cp, cp], uint),
            "otrl_instag_read": ([vp, cp], uint),
            "otrl_instag_write": ([vp, cp], uint),
            "otrl_instag_find": ([vp, cp, cp], ctypes.POINTER(_InsTag)),
            # libgcrypt, reached through libotr's own dependency
            "gcry_sexp_new": ([ctypes.POINTER(vp), cp, ctypes.c_size_t, ctypes.c_int], uint),
            "gcry_sexp_sprint": ([vp, ctypes.c_int, vp, ctypes.c_size_t], ctypes.c_size_t),
            "gcry_sexp_release": ([vp], None),
        }
        for name, (argtypes, restype) in table.items():
            function = getattr(c, name)
            function.argtypes = argtypes
            function.restype = restype

    @contextmanager
    def userstate(self) -> Iterator[UserState]:
        handle = self._c.otrl_userstate_create()
        if not handle:
            raise MemoryError("otrl_userstate_create")
        try:
            yield UserState(self, handle)
        finally:
            self._c.otrl_userstate_free(handle)


_LOADED: LibOTR | None = None


def load() -> LibOTR | None:
    """The library, or ``None`` if libotr.so.5 cannot be loaded."""
    global _LOADED
    if _LOADED is None:
        name = ctypes.util.find_library("otr") or "libotr.so.5"
        try:
            cdll = ctypes.CDLL(name)
        except OSError:
            return None
        _LOADED = LibOTR(cdll)
    return _LOADED
