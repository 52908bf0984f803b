"""Build the libotr-based interop peer (``libotr_peer.c``).

``build_libotr_peer()`` compiles the C source with gcc into
``tests/interop/_build/`` and returns the path of the executable.  The binary's
name contains a hash of the source and of the compiler command, so an edited
source (or changed flags) gives a new binary and an unchanged one is reused.

Run ``python -m tests.interop.build`` to build by hand; it prints the path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "libotr_peer.c"
BUILD_DIR = HERE / "_build"
CFLAGS: tuple[str, ...] = ("-std=gnu11", "-Wall", "-Wextra", "-O2")
LIBS: tuple[str, ...] = ("-lotr", "-lgcrypt")
HEADER = Path("/usr/include/libotr/proto.h")

INSTALL_HINT = (
    "libotr development files are needed to build the libotr interop peer. "
    "On Debian/Ubuntu install them with:  sudo apt-get install libotr5-dev  "
    "(this also brings libgcrypt20-dev); then rerun the tests."
)

_lock = threading.Lock()


def _compiler() -> str:
    cc = os.environ.get("CC", "gcc")
    path = shutil.which(cc)
    if path is None:
        raise RuntimeError(
            f"C compiler {cc!r} not found; install gcc (apt-get install gcc) "
            "to build the libotr interop peer"
        )
    return path


def _fingerprint(cc: str, source: bytes) -> str:
    h = hashlib.sha256()
    h.update(source)
    h.update("\0".join((cc, *CFLAGS, *LIBS)).encode())
    return h.hexdigest()[:16]


def _headers_present(cc: str) -> bool:
    """Whether ``<libotr/proto.h>`` can be found by the compiler."""
    if HEADER.exists():
        return True
    probe = subprocess.run(
        [cc, "-E", "-x", "c", "-", "-o", os.devnull],
        input=b"#include <libotr/proto.h>\n",
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def build_libotr_peer(*, force: bool = False) -> Path:
    """Compile the libotr peer if needed and return the executable's path.

    Raises RuntimeError with installation advice when the libotr headers or
    the compiler are missing, or with the compiler output when compiling
    fails.
    """
    with _lock:
        cc = _compiler()
        source = SOURCE.read_bytes()
        target = BUILD_DIR / f"libotr_peer-{_fingerprint(cc, source)}"
        if target.exists() and os.access(target, os.X_OK) and not force:
            return target
        if not _headers_present(cc):
            raise RuntimeError(INSTALL_HINT)
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        # Compile to a temporary name and rename, so that concurrent builds
        # (e.g. parallel test workers) never see a half-written binary.
        fd, tmp_name = tempfile.mkstemp(prefix=".libotr_peer-", dir=BUILD_DIR)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            cmd = [cc, *CFLAGS, "-o", str(tmp), str(SOURCE), *LIBS]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                output = (result.stderr + result.stdout).strip()
                hint = ""
                if ("libotr" in output and "No such file" in output) or "cannot find -l" in output:
                    hint = "\n" + INSTALL_HINT
                raise RuntimeError(
                    f"building the libotr peer failed ({' '.join(cmd)}):\n{output}{hint}"
                )
            tmp.chmod(0o755)
            tmp.replace(target)
        finally:
            if tmp.exists():
                tmp.unlink()
        for old in BUILD_DIR.glob("libotr_peer-*"):
            if old != target:
                old.unlink(missing_ok=True)
        return target


def main() -> int:
    try:
        path = build_libotr_peer(force="--force" in sys.argv[1:])
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
