"""The one exception hierarchy of offrecord, split by who is at fault.

* :class:`LocalProtocolError` — the caller used the API wrongly (sending while
  finished, SMP while not encrypted, a bad argument).
* :class:`RemoteProtocolError` — the peer (or the network) sent something we
  cannot accept: malformed, unverifiable, out of range.  Every parser raises
  only this for bad input.
* :class:`StorageError` — a key, fingerprint or instance-tag file is
  unreadable or malformed.  It names the file and line.

Messages never contain key material, secrets or plaintext.
"""

from __future__ import annotations


class OTRError(Exception):
    """Root of every error offrecord raises on purpose."""


class LocalProtocolError(OTRError):
    """The local application asked for something that cannot be done now."""


class RemoteProtocolError(OTRError):
    """The peer sent something malformed, out of range or unverifiable."""


class StorageError(OTRError):
    """A persisted file could not be read or written.

    ``path`` and ``line`` (1-based, when known) say where.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
