"""Script mode: commands and messages from a file or a pipe, one per line;
every event printed as one line (``docs/chat.md``, "Script mode").

Lines run in order; a line starts once the previous one is done.  ``/wait
PATTERN [TIMEOUT]`` waits for an event line starting with PATTERN that no
earlier ``/wait`` matched (lines printed before the ``/wait`` count too, so
nothing is missed by arriving early); ``/sleep SECONDS`` pauses.  At the end
of the input (or ``/quit``) the client ends its private conversations and
leaves the network.

Exit status: 0 all went well; 1 a command failed (the ``error`` line says
which); 3 a ``/wait`` timed out; 4 the network went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final, TextIO

from offrecord.chat import commands as cmd
from offrecord.chat.client import ChatClient
from offrecord.chat.render import Line, script_line

__all__ = [
    "EXIT_COMMAND_FAILED",
    "EXIT_DISCONNECTED",
    "EXIT_OK",
    "EXIT_WAIT_TIMEOUT",
    "ScriptOutput",
    "any_of",
    "lines_from_stream",
    "run_script",
]

EXIT_OK: Final = 0
EXIT_COMMAND_FAILED: Final = 1
EXIT_WAIT_TIMEOUT: Final = 3
EXIT_DISCONNECTED: Final = 4


def any_of(*futures: asyncio.Future[Any]) -> list[asyncio.Future[Any]]:
    return list(futures)


class ScriptOutput:
    """Prints event lines and remembers them for ``/wait``."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self.lines: list[str] = []
        self._consumed: list[bool] = []
        self._changed = asyncio.Event()

    def __call__(self, line: Line) -> None:
        self.emit(script_line(line))

    def emit(self, text: str) -> None:
        self.lines.append(text)
        self._consumed.append(False)
        self._write(text)
        self._changed.set()

    def take(self, pattern: str) -> bool:
        """Consume the first unconsumed line starting with ``pattern``."""
        for index, text in enumerate(self.lines):
            if not self._consumed[index] and text.startswith(pattern):
                self._consumed[index] = True
                return True
        return False

    async def wait(self, pattern: str, timeout: float, stop: asyncio.Future[None]) -> bool:
        """Wait until :meth:`take` succeeds, ``timeout`` passes or ``stop`` is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.take(pattern):
            remaining = deadline - loop.time()
            if remaining <= 0 or stop.done():
                return False
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait(
                    any_of(changed, stop), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                changed.cancel()
        return True


async def lines_from_stream(stream: TextIO) -> AsyncIterator[str]:
    """Lines of a blocking stream (stdin), read in a daemon thread so that
    leaving early never waits for a line that will not come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="script-input", daemon=True).start()
    while True:
        line = await queue.get()
        if line is None:
            return
        yield line


async def _iterate(lines: Iterable[str] | AsyncIterator[str]) -> AsyncIterator[str]:
    if isinstance(lines, AsyncIterator):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line


async def run_script(
    client: ChatClient,
    output: ScriptOutput,
    lines: Iterable[str] | AsyncIterator[str],
    *,
    network: asyncio.Future[None],
) -> int:
    """Run the script's lines against ``client``; ``network`` completes when
    the connection ends.  Returns the exit status (see the module docs)."""
    failed = False
    source = _iterate(lines).__aiter__()
    while True:
        if network.done():
            return EXIT_DISCONNECTED
        next_line = asyncio.ensure_future(source.__anext__())
        await asyncio.wait(any_of(next_line, network), return_when=asyncio.FIRST_COMPLETED)
        if not next_line.done():
            next_line.cancel()
            return EXIT_DISCONNECTED
        try:
            line = next_line.result()
        except StopAsyncIteration:
            break
        try:
            command = cmd.parse_input(line)
        except cmd.CommandSyntaxError as exc:
            output(Line("error", None, (), str(exc)))
            failed = True
            continue
        if command is None:
            continue
        if isinstance(command, cmd.Quit):
            break
        if isinstance(command, cmd.Wait):
            if not await output.wait(command.pattern, command.timeout, network):
                if network.done():
                    return EXIT_DISCONNECTED
                output(Line("timeout", None, (), command.pattern))
                return EXIT_WAIT_TIMEOUT
            continue
        if isinstance(command, cmd.Sleep):
            await asyncio.sleep(command.seconds)
            continue
        if not await client.handle(command):
            failed = True
    return EXIT_COMMAND_FAILED if failed else EXIT_OK
