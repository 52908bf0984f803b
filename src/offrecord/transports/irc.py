"""An asyncio IRC client that carries private messages for the chat client.

The protocol is handled here directly (see ``docs/chat.md`` for why): the
client registers (``NICK``/``USER``, trying another nick when the server says
it is taken), answers ``PING``, learns the server's ``CASEMAPPING`` and
``NICKLEN`` from ``ISUPPORT`` and its own ``nick!user@host`` as the server
shows it to others, and turns private ``PRIVMSG`` lines into
:class:`~offrecord.transports.base.Delivered` events.  Channels are not used.

Sizes are bytes.  A server relays our message to the buddy as
``:nick!user@host PRIVMSG buddy :text\\r\\n``, and that whole line must fit in
IRC's 512 bytes, so :meth:`IRCTransport.max_message_size` is 512 minus that
prefix; until the server has told us our ``user@host`` the client assumes the
longest host a server may show (63 bytes) and a ``~``-prefixed user name.

Outgoing lines are paced with a token bucket (a burst of ``burst`` lines, then
one line per ``interval`` seconds), the way irssi paces its queue, so a long
message sent as many OTR fragments never trips a server's flood protection.
``PONG`` replies skip the queue.

Nothing received is trusted: lines that do not parse, are too long or are not
valid UTF-8 (decoded as Latin-1 instead, as IRC clients do) never stop the
client.  Message text is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from offrecord.transports.base import (
    Delivered,
    Disconnected,
    Notice,
    TransportError,
    TransportEvent,
    until_disconnected,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "IRCTransport",
    "Message",
    "casefold",
    "parse_line",
    "relay_budget",
    "split_utf8",
]

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 6667
DEFAULT_TLS_PORT: Final = 6697
LINE_LIMIT: Final = 512  # RFC 1459/2812, CR LF included
# The longest line we accept from a server: IRCv3 message tags may add 8191
# bytes in front of the 512; anything longer is dropped.
MAX_INCOMING_LINE: Final = 8191 + LINE_LIMIT
# What we assume until the server shows us our real user@host.
ASSUMED_HOST_LENGTH: Final = 63
ASSUMED_USER_PREFIX: Final = "~"
REGISTRATION_TIMEOUT: Final = 30.0
CLOSE_TIMEOUT: Final = 5.0
MAX_NICK_ATTEMPTS: Final = 10
CTCP: Final = "\x01"

# Numerics we act on.
RPL_WELCOME: Final = "001"
RPL_AWAY: Final = "301"
RPL_ISUPPORT: Final = "005"
RPL_USERHOST: Final = "302"
RPL_HOSTHIDDEN: Final = "396"
ERR_NOSUCHNICK: Final = "401"
ERR_ERRONEUSNICKNAME: Final = "432"
ERR_NICKNAMEINUSE: Final = "433"
ERR_NICKCOLLISION: Final = "436"
ERR_UNAVAILRESOURCE: Final = "437"
ERR_PASSWDMISMATCH: Final = "464"
ERR_YOUREBANNEDCREEP: Final = "465"
# Replies that tell the user something about a buddy they wrote to.
_BUDDY_ERRORS: Final = frozenset({ERR_NOSUCHNICK, "404", "407", "411", "412", "301"})


# ---------------------------------------------------------------------------
# Pure helpers


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed IRC line (tags are dropped: nothing here uses them)."""

    prefix: str | None
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str | None:
        """The nick of a ``nick!user@host`` prefix (or the server name)."""
        if self.prefix is None:
            return None
        return self.prefix.split("!", 1)[0].split("@", 1)[0] or None


def parse_line(line: str) -> Message | None:
    """Parse one IRC line (without CR LF); ``None`` when it is not one."""
    rest = line.strip("\r\n")
    if rest.startswith("@"):  # IRCv3 tags
        _, _, rest = rest.partition(" ")
    rest = rest.lstrip(" ")
    prefix: str | None = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
        if not prefix:
            return None
    if not rest:
        return None
    trailing: str | None = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        return None
    words = rest.split()
    if not words:
        return None
    command = words[0].upper()
    if not (command.isalpha() or (len(command) == 3 and command.isdigit())):
        return None
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return Message(prefix, command, tuple(params))


def casefold(name: str, casemapping: str = "rfc1459") -> str:
    """``name`` lower-cased as the server compares nicks (ISUPPORT CASEMAPPING):
    ``ascii`` folds A-Z only; ``rfc1459`` also folds ``[]\\~`` to ``{}|^``;
    ``strict-rfc1459`` the same without ``~``/``^``."""
    mapping = casemapping.lower()
    out = []
    for ch in name:
        if "A" <= ch <= "Z":
            out.append(chr(ord(ch) + 32))
        elif mapping in ("rfc1459", "strict-rfc1459") and ch in "[]\\":
            out.append({"[": "{", "]": "}", "\\": "|"}[ch])
        elif mapping == "rfc1459" and ch == "~":
            out.append("^")
        else:
            out.append(ch)
    return "".join(out)


def relay_budget(nick: str, user: str, host: str, target: str) -> int:
    """Bytes left for the text of a PRIVMSG once the server has put
    ``:nick!user@host PRIVMSG target :`` in front and CR LF after it."""
    prefix = f":{nick}!{user}@{host} PRIVMSG {target} :"
    return LINE_LIMIT - len(prefix.encode("utf-8")) - 2


def split_utf8(text: str, limit: int) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-8 bytes, never inside
    a character; a cut falls after a space when one is near."""
    if limit < 4:
        raise ValueError("the limit must leave room for one UTF-8 character")
    pieces: list[str] = []
    data = text.encode("utf-8")
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # inside a character
            cut -= 1
        space = data.rfind(b" ", max(0, cut - 40), cut)
        if space > 0:
            cut = space + 1
        pieces.append(data[:cut].decode("utf-8"))
        data = data[cut:]
    if data:
        pieces.append(data.decode("utf-8"))
    return pieces


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _clean(text: str) -> str:
    """Text safe inside one IRC line: no CR, LF or NUL."""
    return text.replace("\r", "").replace("\n", " ").replace("\0", "")


class _Pacer:
    """A token bucket: ``burst`` lines at once, then one every ``interval`` s."""

    def __init__(self, burst: int, interval: float, clock: Callable[[], float]) -> None:
        self._burst = float(burst)
        self._interval = interval
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def delay(self) -> float:
        """Seconds to wait before the next line may go (0: now)."""
        now = self._clock()
        if self._interval > 0:
            self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
        else:
            self._tokens = self._burst
        self._last = now
        if self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) * self._interval

    def take(self) -> None:
        self._tokens -= 1


# ---------------------------------------------------------------------------
# The transport


class IRCTransport:
    """One connection to an IRC server, as one nick.  See the module docs.

    ``account_name`` is ``nick@host`` as Pidgin names IRC accounts, so keys
    and fingerprints live under the nick asked for, even if the server made
    us take another.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        nick: str,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        username: str | None = None,
        realname: str = "offrecord",
        password: str | None = None,
        burst: int = 5,
        interval: float = 1.0,
        registration_timeout: float = REGISTRATION_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not nick or any(ch in nick for ch in " \r\n\0,*?!@:") or nick[0] in "#&+$":
            raise ValueError(f"not a valid IRC nick: {nick!r}")
        self.host = host
        self.port = port if port is not None else (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
        self.tls = tls
        self._ssl_context = ssl_context
        self.wanted_nick = nick
        self.nick = nick
        self.username = username or "".join(ch for ch in nick.lower() if ch.isalnum())[:9] or "user"
        self.realname = realname
        self._password = password
        self._registration_timeout = registration_timeout
        self.casemapping = "rfc1459"
        self.nicklen: int | None = None
        self.chantypes = "#&"
        # What the server shows others as our user and host; None until known.
        self.user_host: tuple[str, str] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._queue: deque[bytes] = deque()
        self._queue_changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._pacer = _Pacer(burst, interval, clock)
        self._events: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._buffer = b""
        self._skip_to_newline = False
        self._closed = False
        self._disconnected = False

    # -- the contract ---------------------------------------------------------

    @property
    def protocol(self) -> str:
        return "prpl-irc"

    @property
    def account_name(self) -> str:
        return f"{self.wanted_nick}@{self.host}"

    def normalize(self, buddy: str) -> str:
        return casefold(buddy, self.casemapping)

    def max_message_size(self, buddy: str) -> int:
        if self.user_host is not None:
            user, host = self.user_host
        else:
            user, host = ASSUMED_USER_PREFIX + self.username, "x" * ASSUMED_HOST_LENGTH
        return relay_budget(self.nick, user, host, buddy)

    async def connect(self) -> None:
        context: ssl.SSLContext | None = None
        if self.tls:
            context = self._ssl_context or ssl.create_default_context()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=context,
                    server_hostname=self.host if context is not None else None,
                    limit=MAX_INCOMING_LINE * 2,
                ),
                self._registration_timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(
                f"{self.host}:{self.port}: the server's TLS certificate is not valid "
                f"({exc.verify_message})"
            ) from None
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            )
            raise TransportError(f"cannot connect to {self.host}:{self.port}: {reason}") from None
        try:
            await asyncio.wait_for(self._register(), self._registration_timeout)
        except TimeoutError:
            await self._abort()
            raise TransportError(f"{self.host}:{self.port}: registration timed out") from None
        except TransportError:
            await self._abort()
            raise
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="irc-reader"),
            asyncio.create_task(self._write_loop(), name="irc-writer"),
        ]
        # The welcome line usually carries our nick!user@host; ask as well,
        # for servers that leave it out.
        self._enqueue(f"USERHOST {self.nick}")

    async def send(self, buddy: str, text: str, *, otr: bool) -> None:
        if self._closed or self._disconnected:
            raise TransportError("not connected")
        target = _clean(buddy).strip()
        if not target or " " in target:
            raise TransportError(f"not a nick: {buddy!r}")
        budget = max(16, self.max_message_size(target))
        # OTR traffic stays one message (a query's explanation follows on the
        # same line); a user's several lines become several messages.
        lines = [" ".join(text.splitlines())] if otr else text.splitlines()
        for line in lines:
            line = line.replace("\0", "")
            if not line:
                continue
            for piece in split_utf8(line, budget):
                self._enqueue(f"PRIVMSG {target} :{piece}")

    def events(self) -> AsyncIterator[TransportEvent]:
        return until_disconnected(self._events)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and not self._disconnected:
            # Let what the user sent go out first, then say goodbye.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self._drain_timeout())
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write(b"QUIT :Leaving\r\n")
                await asyncio.wait_for(self._writer.drain(), CLOSE_TIMEOUT)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._abort()
        self._finish("closed")

    def _drain_timeout(self) -> float:
        return CLOSE_TIMEOUT + len(self._queue) * self._pacer._interval

    # -- registration ----------------------------------------------------------

    async def _register(self) -> None:
        if self._password:
            self._write_now(f"PASS {self._password}")
        self._write_now(f"NICK {self.nick}")
        self._write_now(f"USER {self.username} 0 * :{_clean(self.realname)}")
        attempts = 0
        while True:
            msg = await self._read_message()
            if msg is None:
                raise TransportError(f"{self.host}:{self.port} closed the connection")
            if msg.command == "PING":
                self._write_now(f"PONG :{msg.params[-1] if msg.params else ''}")
            elif msg.command == RPL_WELCOME:
                if msg.params:
                    self.nick = msg.params[0]
                self._learn_from_welcome(msg)
                return
            elif msg.command in (ERR_NICKNAMEINUSE, ERR_NICKCOLLISION, ERR_UNAVAILRESOURCE,
                                 ERR_ERRONEUSNICKNAME):  # fmt: skip
                attempts += 1
                if attempts > MAX_NICK_ATTEMPTS or (
                    msg.command == ERR_ERRONEUSNICKNAME and attempts > 1
                ):
                    raise TransportError(f"the server refused the nick {self.wanted_nick!r}")
                if msg.command == ERR_ERRONEUSNICKNAME:
                    raise TransportError(f"the server does not accept the nick {self.nick!r}")
                self.nick = self._alternative_nick(attempts)
                self._write_now(f"NICK {self.nick}")
            elif msg.command in (ERR_PASSWDMISMATCH, ERR_YOUREBANNEDCREEP, "ERROR"):
                reason = msg.params[-1] if msg.params else msg.command
                raise TransportError(f"{self.host}: {reason}")
            elif msg.command == RPL_ISUPPORT:
                self._learn_isupport(msg)

    def _alternative_nick(self, attempt: int) -> str:
        base = self.wanted_nick
        limit = self.nicklen or 9
        suffix = "_" if attempt == 1 else str(attempt)
        return base[: max(1, limit - len(suffix))] + suffix

    def _learn_from_welcome(self, msg: Message) -> None:
        words = msg.params[-1].split() if msg.params else []
        if words:
            self._learn_mask(words[-1])

    def _learn_mask(self, mask: str) -> None:
        """Learn our user@host from ``nick!user@host``."""
        nick, bang, rest = mask.partition("!")
        user, at, host = rest.partition("@")
        mine = self.normalize(nick) == self.normalize(self.nick)
        if bang and at and user and host and mine and " " not in host and len(host) < 256:
            self.user_host = (user, host)

    def _learn_isupport(self, msg: Message) -> None:
        for token in msg.params[1:-1]:
            key, _, value = token.partition("=")
            key = key.upper()
            if key == "CASEMAPPING" and value.lower() in ("ascii", "rfc1459", "strict-rfc1459"):
                self.casemapping = value.lower()
            elif key == "NICKLEN" and value.isdigit():
                self.nicklen = int(value)
            elif key == "CHANTYPES":
                self.chantypes = value

    # -- reading -----------------------------------------------------------------

    async def _read_message(self) -> Message | None:
        """The next well-formed line from the server; ``None`` at the end."""
        assert self._reader is not None
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > MAX_INCOMING_LINE:
                    # A line too long: drop what we have up to its end.
                    self._buffer = b""
                    self._skip_to_newline = True
                chunk = await self._reader.read(4096)
                if not chunk:
                    return None
                if self._skip_to_newline:
                    cut = chunk.find(b"\n")
                    if cut < 0:
                        continue
                    chunk = chunk[cut + 1 :]
                    self._skip_to_newline = False
                self._buffer += chunk
                continue
            raw, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
            if len(raw) > MAX_INCOMING_LINE:
                continue
            msg = parse_line(_decode(raw.rstrip(b"\r")))
            if msg is not None:
                return msg

    async def _read_loop(self) -> None:
        reason = "the server closed the connection"
        try:
            while True:
                msg = await self._read_message()
                if msg is None:
                    break
                try:
                    stop = self._handle(msg)
                except Exception:  # a line we did not expect must never stop us
                    log.debug("ignored an IRC line that could not be handled (%s)", msg.command)
                    continue
                if stop is not None:
                    reason = stop
                    break
        except (OSError, ssl.SSLError) as exc:
            reason = f"connection lost: {exc}"
        except asyncio.CancelledError:
            raise
        self._finish(reason)

    def _handle(self, msg: Message) -> str | None:
        """Act on one line; a string means the connection is over."""
        cmd, params = msg.command, msg.params
        if cmd == "PING":
            self._write_now(f"PONG :{params[-1] if params else ''}")
        elif cmd == "PRIVMSG" and len(params) >= 2:
            self._privmsg(msg)
        elif cmd == "NOTICE" and len(params) >= 2:
            self._notice(msg)
        elif cmd == "NICK" and params and msg.nick is not None:
            if self.normalize(msg.nick) == self.normalize(self.nick):
                self.nick = params[0]
                if self.user_host is not None and msg.prefix and "!" in msg.prefix:
                    self._learn_mask(f"{params[0]}!{msg.prefix.split('!', 1)[1]}")
        elif cmd == RPL_USERHOST and len(params) >= 2:
            for reply in params[-1].split():
                nick, _, rest = reply.partition("=")
                self._learn_mask(f"{nick.rstrip('*')}!{rest[1:]}")
        elif cmd == RPL_HOSTHIDDEN and len(params) >= 2 and self.user_host is not None:
            host = params[1]
            if "@" in host:
                user, _, host = host.partition("@")
                self.user_host = (user, host)
            elif host and " " not in host:
                self.user_host = (self.user_host[0], host)
        elif cmd == RPL_ISUPPORT:
            self._learn_isupport(msg)
        elif cmd in _BUDDY_ERRORS and len(params) >= 3:
            text = f"is away: {params[-1]}" if cmd == RPL_AWAY else params[-1]
            self._events.put_nowait(Notice(self.normalize(params[1]), text))
        elif cmd == "ERROR":
            return params[-1] if params else "the server ended the connection"
        return None

    def _privmsg(self, msg: Message) -> None:
        target, text = msg.params[0], msg.params[-1]
        sender = msg.nick
        if sender is None or not msg.prefix or "!" not in msg.prefix:
            return  # from a server, not a person
        if target[:1] in self.chantypes or self.normalize(target) != self.normalize(self.nick):
            return  # a channel, or not for us
        if text.startswith(CTCP):
            body = text.strip(CTCP)
            verb, _, rest = body.partition(" ")
            if verb.upper() != "ACTION":
                return  # CTCP queries are not answered: they tell others about us
            text = f"/me {rest}"
        if text:
            self._events.put_nowait(Delivered(self.normalize(sender), text))

    def _notice(self, msg: Message) -> None:
        target, text = msg.params[0], msg.params[-1]
        sender = msg.nick
        if sender is None or not msg.prefix or "!" not in msg.prefix:
            return
        if target[:1] in self.chantypes or text.startswith(CTCP):
            return
        # Notices are never answered automatically (RFC 2812), and OTR is not
        # carried in them; the user still sees them.
        self._events.put_nowait(Notice(self.normalize(sender), text))

    def _finish(self, reason: str) -> None:
        if not self._disconnected:
            self._disconnected = True
            self._events.put_nowait(Disconnected(reason))

    # -- writing -------------------------------------------------------------------

    def _encode(self, line: str) -> bytes:
        data = _clean(line).encode("utf-8")
        if len(data) > LINE_LIMIT - 2:
            # Never send a line the server would cut or refuse: shorten it
            # at a character boundary (callers keep within the budget).
            data = split_utf8(_clean(line), LINE_LIMIT - 2)[0].encode("utf-8")
        return data + b"\r\n"

    def _write_now(self, line: str) -> None:
        """Write a line at once, outside the pacing queue (registration, PONG)."""
        if self._writer is None or self._writer.is_closing():
            return
        self._writer.write(self._encode(line))

    def _enqueue(self, line: str) -> None:
        self._queue.append(self._encode(line))
        self._drained.clear()
        self._queue_changed.set()

    async def _write_loop(self) -> None:
        assert self._writer is not None
        try:
            while True:
                if not self._queue:
                    self._drained.set()
                    self._queue_changed.clear()
                    await self._queue_changed.wait()
                    continue
                delay = self._pacer.delay()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                self._pacer.take()
                self._writer.write(self._queue.popleft())
                await self._writer.drain()
        except (OSError, ssl.SSLError, RuntimeError) as exc:
            self._finish(f"connection lost: {exc}")

    async def _abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with contextlib.suppress(OSError, RuntimeError, ssl.SSLError):
            writer.close()
        with contextlib.suppress(OSError, RuntimeError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
