"""A real IRC server for the tests: ngircd on a random loopback port, and a
small TCP proxy that records every line between a client and the server.

:class:`Ngircd` writes a temporary configuration and runs ngircd in the
foreground (``--nodaemon``), so the test owns the process and stops it with
SIGTERM.  Run as root, ngircd drops its privileges to ``nobody`` by itself (it
refuses to keep uid 0), which is why its configuration and MOTD are
world-readable files.

:class:`RecordingProxy` forwards one TCP port to the server and keeps every
line in both directions, so a test can prove what the network saw.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["ChatProcess", "Ngircd", "Recorded", "RecordingProxy", "find_ngircd", "free_port"]

STARTUP_TIMEOUT = 15.0


def find_ngircd() -> str | None:
    """The ngircd executable (Debian installs it in /usr/sbin)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/usr/local/sbin"
    return shutil.which("ngircd", path=path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


CONFIG = """\
[Global]
\tName = irc.offrecord.test
\tInfo = offrecord test server
\tAdminInfo1 = offrecord tests
\tAdminInfo2 = loopback
\tAdminEMail = nobody@offrecord.test
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdFile = {motd}
\tPidFile = {pidfile}
[Limits]
\tMaxNickLength = 30
\tPingTimeout = 120
\tPongTimeout = 20
\tMaxConnectionsIP = 0
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
\tOperCanUseMode = no
"""


class Ngircd:
    """An ngircd process on ``127.0.0.1:port``; use as a context manager."""

    def __init__(self, directory: Path, executable: str) -> None:
        self.directory = directory
        self.executable = executable
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = directory / "ngircd.log"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        motd = self.directory / "motd"
        motd.write_text("offrecord test server\n")
        motd.chmod(0o644)
        for _attempt in range(5):
            self.port = free_port()
            config = self.directory / "ngircd.conf"
            config.write_text(
                CONFIG.format(port=self.port, motd=motd, pidfile=self.directory / "ngircd.pid")
            )
            config.chmod(0o644)
            with open(self._log, "ab") as log:
                self._proc = subprocess.Popen(
                    [self.executable, "--nodaemon", "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _accepts(self.port):
                    return
                time.sleep(0.05)
            self.stop()  # the port was taken meanwhile, or it failed: try again
        raise RuntimeError(f"ngircd did not start; its log:\n{self.log}")

    @property
    def log(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> Ngircd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class Recorded:
    """One line seen by the proxy: ``upstream`` is client -> server."""

    upstream: bool
    raw: bytes
    at: float


class RecordingProxy:
    """Forwards ``127.0.0.1:port`` to the server and records every line."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.port: int = self._listener.getsockname()[1]
        self.lines: list[Recorded] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        accept = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, server]
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, upstream), daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        pending = b""
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                now = time.monotonic()
                with self._lock:
                    self.lines.extend(Recorded(upstream, line + b"\n", now) for line in complete)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def recorded(self, *, upstream: bool) -> list[bytes]:
        with self._lock:
            return [r.raw for r in self.lines if r.upstream is upstream]

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


class ChatProcess:
    """``offrecord chat irc`` in script mode as a subprocess; its stdout
    lines are collected as they come, so a test can wait for one."""

    def __init__(self, argv: list[str], *, cwd: Path | None = None) -> None:
        env = dict(os.environ)
        env.pop("OFFRECORD_STORE", None)
        self.argv = argv
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
        )
        self.lines: list[str] = []
        self.times: list[float] = []
        self.started = time.monotonic()
        self._stderr: list[bytes] = []
        self._changed = threading.Condition()
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump_out, args=(self._proc.stdout,), daemon=True),
            threading.Thread(target=self._pump_err, args=(self._proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump_out(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            with self._changed:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self.times.append(time.monotonic())
                self._changed.notify_all()

    def _pump_err(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._stderr.append(raw)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", errors="replace")

    def wait_line(self, prefix: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._proc.poll() is not None:
                    raise AssertionError(self.describe(f"no line starting with {prefix!r}"))
                self._changed.wait(min(remaining, 0.2))

    def finish(self, timeout: float = 90.0) -> int:
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise AssertionError(self.describe("did not finish in time")) from None
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def describe(self, problem: str) -> str:
        out = "\n".join(self.lines)
        return (
            f"{problem}\n  command: {' '.join(self.argv)}\n  exit: {self._proc.poll()}\n"
            f"  stdout:\n{out}\n  stderr:\n{self.stderr}"
        )
