"""Small ctypes bindings to the installed libgcrypt (20) and libotr (5).

Only what the interoperability tests need: MPIs, S-expressions, DSA
sign/verify/genkey, and libotr's private-key functions.  Every object handed
out is released by the helper that created it; callers deal in Python ints
and bytes.

The libraries are loaded lazily; :func:`available` says whether they can be.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "GcryptError",
    "Libs",
    "available",
    "libs",
]

GCRYCTL_INITIALIZATION_FINISHED = 38
GCRYMPI_FMT_USG = 5
GPG_ERR_CODE_MASK = 0xFFFF
GPG_ERR_BAD_SIGNATURE = 8

OTRL_VERSION = (4, 1, 1)
OTRL_PRIVKEY_FPRINT_HUMAN_LEN = 45

_c_void_pp = ctypes.POINTER(ctypes.c_void_p)
_c_size_p = ctypes.POINTER(ctypes.c_size_t)


class GcryptError(Exception):
    def __init__(self, what: str, code: int, text: str) -> None:
        super().__init__(f"{what}: {text} ({code:#x})")
        self.code = code


class OtrlPrivKey(ctypes.Structure):
    """libotr's ``OtrlPrivKey`` (privkey-t.h)."""


OtrlPrivKey._fields_ = [
    ("next", ctypes.POINTER(OtrlPrivKey)),
    ("tous", ctypes.c_void_p),
    ("accountname", ctypes.c_char_p),
    ("protocol", ctypes.c_char_p),
    ("pubkey_type", ctypes.c_ushort),
    ("privkey", ctypes.c_void_p),
    ("pubkey_data", ctypes.POINTER(ctypes.c_ubyte)),
    ("pubkey_datalen", ctypes.c_size_t),
]


def _load(name: str, soname: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(soname)
    except OSError:
        found = ctypes.util.find_library(name)
        if found is None:
            raise
        return ctypes.CDLL(found)


@dataclass
class Libs:
    gcry: ctypes.CDLL
    otr: ctypes.CDLL
    libc: ctypes.CDLL

    # --- setup ------------------------------------------------------------

    def _declare(self) -> None:
        g = self.gcry
        g.gcry_check_version.argtypes = [ctypes.c_char_p]
        g.gcry_check_version.restype = ctypes.c_char_p
        g.gcry_control.restype = ctypes.c_uint
        g.gcry_strerror.argtypes = [ctypes.c_uint]
        g.gcry_strerror.restype = ctypes.c_char_p
        g.gcry_mpi_scan.argtypes = [
            _c_void_pp,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_size_t,
            _c_size_p,
        ]
        g.gcry_mpi_scan.restype = ctypes.c_uint
        g.gcry_mpi_set_ui.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        g.gcry_mpi_set_ui.restype = ctypes.c_void_p
        g.gcry_mpi_print.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
            _c_size_p,
            ctypes.c_void_p,
        ]
        g.gcry_mpi_print.restype = ctypes.c_uint
        g.gcry_mpi_release.argtypes = [ctypes.c_void_p]
        g.gcry_mpi_release.restype = None
        # Variadic: only the fixed arguments are declared.
        g.gcry_sexp_build.argtypes = [_c_void_pp, _c_size_p, ctypes.c_char_p]
        g.gcry_sexp_build.restype = ctypes.c_uint
        g.gcry_sexp_new.argtypes = [_c_void_pp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        g.gcry_sexp_new.restype = ctypes.c_uint
        g.gcry_sexp_release.argtypes = [ctypes.c_void_p]
        g.gcry_sexp_release.restype = None
        g.gcry_sexp_find_token.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        g.gcry_sexp_find_token.restype = ctypes.c_void_p
        g.gcry_sexp_nth_mpi.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        g.gcry_sexp_nth_mpi.restype = ctypes.c_void_p
        g.gcry_pk_sign.argtypes = [_c_void_pp, ctypes.c_void_p, ctypes.c_void_p]
        g.gcry_pk_sign.restype = ctypes.c_uint
        g.gcry_pk_verify.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        g.gcry_pk_verify.restype = ctypes.c_uint
        g.gcry_pk_genkey.argtypes = [_c_void_pp, ctypes.c_void_p]
        g.gcry_pk_genkey.restype = ctypes.c_uint

        o = self.otr
        o.otrl_init.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]
        o.otrl_init.restype = ctypes.c_uint
        o.otrl_userstate_create.argtypes = []
        o.otrl_userstate_create.restype = ctypes.c_void_p
        o.otrl_userstate_free.argtypes = [ctypes.c_void_p]
        o.otrl_userstate_free.restype = None
        o.otrl_privkey_generate.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
        ]
        o.otrl_privkey_generate.restype = ctypes.c_uint
        o.otrl_privkey_read.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        o.otrl_privkey_read.restype = ctypes.c_uint
        o.otrl_privkey_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        o.otrl_privkey_find.restype = ctypes.POINTER(OtrlPrivKey)
        o.otrl_privkey_fingerprint.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
        ]
        o.otrl_privkey_fingerprint.restype = ctypes.c_char_p
        o.otrl_privkey_sign.argtypes = [
            ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
            _c_size_p,
            ctypes.POINTER(OtrlPrivKey),
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        o.otrl_privkey_sign.restype = ctypes.c_uint
        o.otrl_privkey_verify.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_ushort,
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        o.otrl_privkey_verify.restype = ctypes.c_uint

        self.libc.free.argtypes = [ctypes.c_void_p]
        self.libc.free.restype = None

    def _initialise(self) -> None:
        if self.gcry.gcry_check_version(None) is None:
            raise RuntimeError("gcry_check_version failed")
        self._check("otrl_init", self.otr.otrl_init(*OTRL_VERSION))
        self.gcry.gcry_control(ctypes.c_int(GCRYCTL_INITIALIZATION_FINISHED), ctypes.c_int(0))

    # --- errors -----------------------------------------------------------

    def _check(self, what: str, err: int) -> None:
        if err:
            text = self.gcry.gcry_strerror(err) or b"?"
            raise GcryptError(what, err, text.decode())

    # --- MPIs -------------------------------------------------------------

    def mpi_from_int(self, value: int) -> ctypes.c_void_p:
        """A new gcry_mpi_t (caller releases) holding ``value``."""
        if value == 0:
            return ctypes.c_void_p(self.gcry.gcry_mpi_set_ui(None, 0))
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return self.mpi_from_bytes(raw)

    def mpi_from_bytes(self, raw: bytes) -> ctypes.c_void_p:
        """``gcry_mpi_scan(USG)`` of ``raw``, as libotr does for signed data."""
        if not raw:
            return ctypes.c_void_p(self.gcry.gcry_mpi_set_ui(None, 0))
        out = ctypes.c_void_p()
        self._check(
            "gcry_mpi_scan",
            self.gcry.gcry_mpi_scan(ctypes.byref(out), GCRYMPI_FMT_USG, raw, len(raw), None),
        )
        return out

    def mpi_to_int(self, mpi: ctypes.c_void_p | int | None) -> int:
        size = ctypes.c_size_t()
        self._check(
            "gcry_mpi_print",
            self.gcry.gcry_mpi_print(GCRYMPI_FMT_USG, None, 0, ctypes.byref(size), mpi),
        )
        buf = ctypes.create_string_buffer(max(size.value, 1))
        written = ctypes.c_size_t()
        self._check(
            "gcry_mpi_print",
            self.gcry.gcry_mpi_print(GCRYMPI_FMT_USG, buf, size.value, ctypes.byref(written), mpi),
        )
        return int.from_bytes(buf.raw[: written.value], "big")

    # --- S-expressions ----------------------------------------------------

    @contextmanager
    def sexp_build(self, fmt: str, *values: int) -> Iterator[ctypes.c_void_p]:
        """``gcry_sexp_build(fmt, mpi...)`` with each ``%m`` taking an int."""
        mpis = [self.mpi_from_int(v) for v in values]
        out = ctypes.c_void_p()
        try:
            self._check(
                "gcry_sexp_build",
                self.gcry.gcry_sexp_build(ctypes.byref(out), None, fmt.encode(), *mpis),
            )
        finally:
            for m in mpis:
                self.gcry.gcry_mpi_release(m)
        try:
            yield out
        finally:
            self.gcry.gcry_sexp_release(out)

    @contextmanager
    def libotr_data_sexp(self, data: bytes) -> Iterator[ctypes.c_void_p]:
        """The data S-expression exactly as libotr builds it for sign/verify.

        ``otrl_privkey_sign``/``_verify`` scan the bytes as an unsigned MPI
        (zero if empty) and build ``(%m)`` from it: a plain, non-opaque MPI,
        no ``(data (flags ...))`` wrapper.
        """
        mpi = self.mpi_from_bytes(data)
        out = ctypes.c_void_p()
        try:
            self._check(
                "gcry_sexp_build",
                self.gcry.gcry_sexp_build(ctypes.byref(out), None, b"(%m)", mpi),
            )
        finally:
            self.gcry.gcry_mpi_release(mpi)
        try:
            yield out
        finally:
            self.gcry.gcry_sexp_release(out)

    def sexp_mpi(self, sexp: ctypes.c_void_p | int | None, token: str) -> int:
        """The MPI after ``token`` in the first sub-list named ``token``."""
        sub = self.gcry.gcry_sexp_find_token(sexp, token.encode(), 0)
        if not sub:
            raise KeyError(token)
        try:
            mpi = self.gcry.gcry_sexp_nth_mpi(sub, 1, GCRYMPI_FMT_USG)
            if not mpi:
                raise KeyError(token)
            try:
                return self.mpi_to_int(mpi)
            finally:
                self.gcry.gcry_mpi_release(mpi)
        finally:
            self.gcry.gcry_sexp_release(sub)

    # --- DSA through libgcrypt --------------------------------------------

    @contextmanager
    def dsa_public(self, p: int, q: int, g: int, y: int) -> Iterator[ctypes.c_void_p]:
        with self.sexp_build("(public-key (dsa (p %m)(q %m)(g %m)(y %m)))", p, q, g, y) as s:
            yield s

    @contextmanager
    def dsa_private(self, p: int, q: int, g: int, y: int, x: int) -> Iterator[ctypes.c_void_p]:
        fmt = "(private-key (dsa (p %m)(q %m)(g %m)(y %m)(x %m)))"
        with self.sexp_build(fmt, p, q, g, y, x) as s:
            yield s

    def pk_verify_libotr_form(
        self, public: tuple[int, int, int, int], data: bytes, r: int, s: int
    ) -> int:
        """``gcry_pk_verify`` with libotr's data form; returns the gcry error (0 = good)."""
        with (
            self.dsa_public(*public) as pub,
            self.libotr_data_sexp(data) as datas,
            self.sexp_build("(sig-val (dsa (r %m)(s %m)))", r, s) as sig,
        ):
            return int(self.gcry.gcry_pk_verify(sig, datas, pub))

    def pk_sign_libotr_form(
        self, private: tuple[int, int, int, int, int], data: bytes
    ) -> tuple[int, int]:
        """``gcry_pk_sign`` with libotr's data form; returns (r, s)."""
        with self.dsa_private(*private) as key, self.libotr_data_sexp(data) as datas:
            sig = ctypes.c_void_p()
            self._check("gcry_pk_sign", self.gcry.gcry_pk_sign(ctypes.byref(sig), datas, key))
            try:
                return self.sexp_mpi(sig, "r"), self.sexp_mpi(sig, "s")
            finally:
                self.gcry.gcry_sexp_release(sig)

    def pk_genkey_dsa1024(self) -> tuple[int, int, int, int, int]:
        """libgcrypt's ``(genkey (dsa (nbits 4:1024)))`` — what libotr uses."""
        parms = ctypes.c_void_p()
        spec = b"(genkey (dsa (nbits 4:1024)))"
        self._check("gcry_sexp_new", self.gcry.gcry_sexp_new(ctypes.byref(parms), spec, 0, 1))
        key = ctypes.c_void_p()
        try:
            self._check("gcry_pk_genkey", self.gcry.gcry_pk_genkey(ctypes.byref(key), parms))
        finally:
            self.gcry.gcry_sexp_release(parms)
        try:
            priv = self.gcry.gcry_sexp_find_token(key, b"private-key", 0)
            try:
                p, q, g, y, x = (self.sexp_mpi(priv, t) for t in ("p", "q", "g", "y", "x"))
            finally:
                self.gcry.gcry_sexp_release(priv)
            return p, q, g, y, x
        finally:
            self.gcry.gcry_sexp_release(key)

    # --- libotr -----------------------------------------------------------

    @contextmanager
    def userstate(self) -> Iterator[int]:
        us = self.otr.otrl_userstate_create()
        if not us:
            raise RuntimeError("otrl_userstate_create failed")
        try:
            yield us
        finally:
            self.otr.otrl_userstate_free(us)

    def privkey_generate(self, us: int, path: str, account: str, protocol: str) -> None:
        self._check(
            "otrl_privkey_generate",
            self.otr.otrl_privkey_generate(us, path.encode(), account.encode(), protocol.encode()),
        )

    def privkey_read(self, us: int, path: str) -> None:
        self._check("otrl_privkey_read", self.otr.otrl_privkey_read(us, path.encode()))

    def privkey_find(self, us: int, account: str, protocol: str) -> ctypes._Pointer[OtrlPrivKey]:
        found = self.otr.otrl_privkey_find(us, account.encode(), protocol.encode())
        if not found:
            raise KeyError((account, protocol))
        return found  # type: ignore[no-any-return]

    def privkey_pubkey_data(self, key: ctypes._Pointer[OtrlPrivKey]) -> bytes:
        """The MPIs p, q, g, y as libotr serialised them (no type bytes)."""
        contents = key.contents
        return ctypes.string_at(contents.pubkey_data, contents.pubkey_datalen)

    def privkey_human_fingerprint(self, us: int, account: str, protocol: str) -> str:
        buf = ctypes.create_string_buffer(OTRL_PRIVKEY_FPRINT_HUMAN_LEN)
        result = self.otr.otrl_privkey_fingerprint(us, buf, account.encode(), protocol.encode())
        if result is None:
            raise KeyError((account, protocol))
        return buf.value.decode()

    def privkey_sign(self, key: ctypes._Pointer[OtrlPrivKey], data: bytes) -> bytes:
        """``otrl_privkey_sign``: libotr's own 40-byte r || s."""
        sig = ctypes.POINTER(ctypes.c_ubyte)()
        length = ctypes.c_size_t()
        self._check(
            "otrl_privkey_sign",
            self.otr.otrl_privkey_sign(
                ctypes.byref(sig), ctypes.byref(length), key, data, len(data)
            ),
        )
        try:
            return ctypes.string_at(sig, length.value)
        finally:
            self.libc.free(sig)

    def privkey_verify(
        self, public: tuple[int, int, int, int], data: bytes, signature: bytes
    ) -> int:
        """``otrl_privkey_verify`` against a public key; returns the gcry error (0 = good)."""
        with self.dsa_public(*public) as pub:
            return int(
                self.otr.otrl_privkey_verify(signature, len(signature), 0, pub, data, len(data))
            )


_LIBS: Libs | None = None
_LOAD_ERROR: str | None = None


def available() -> str | None:
    """None if the libraries load, else the reason they do not."""
    global _LOAD_ERROR
    if _LIBS is None and _LOAD_ERROR is None:
        try:
            libs()
        except (OSError, AttributeError, RuntimeError, GcryptError) as exc:
            _LOAD_ERROR = str(exc)
    return _LOAD_ERROR


def libs() -> Libs:
    """The process-wide, initialised bindings."""
    global _LIBS
    if _LIBS is None:
        loaded = Libs(
            gcry=_load("gcrypt", "libgcrypt.so.20"),
            otr=_load("otr", "libotr.so.5"),
            libc=_load("c", "libc.so.6"),
        )
        loaded._declare()
        loaded._initialise()
        _LIBS = loaded
    return _LIBS
