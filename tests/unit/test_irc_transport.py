"""The IRC transport against a scripted server on loopback, and its pure parts."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrecord.transports.base import Delivered, Disconnected, Notice, TransportError
from offrecord.transports.irc import (
    ASSUMED_HOST_LENGTH,
    IRCTransport,
    Message,
    casefold,
    parse_line,
    relay_budget,
    split_utf8,
)

# -- pure parts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PING :abc", Message(None, "PING", ("abc",))),
        (":srv 001 me :Welcome me!u@h", Message("srv", "001", ("me", "Welcome me!u@h"))),
        (
            ":bob!b@h PRIVMSG me :?OTR:AAMC:x",
            Message("bob!b@h", "PRIVMSG", ("me", "?OTR:AAMC:x")),
        ),
        (
            "@time=2024 :bob!b@h privmsg me :hi",
            Message("bob!b@h", "PRIVMSG", ("me", "hi")),
        ),
        (
            ":srv 005 me A=1 B :are supported",
            Message("srv", "005", ("me", "A=1", "B", "are supported")),
        ),
        ("NOTICE me :", Message(None, "NOTICE", ("me", ""))),
        (":srv  MODE  me  +i", Message("srv", "MODE", ("me", "+i"))),
        ("PRIVMSG me ::-)", Message(None, "PRIVMSG", ("me", ":-)"))),
    ],
)
def test_parse_line(line: str, expected: Message) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    "line", ["", "   ", ":", ":prefix-only", ": 001 x", "12 x", "PRIV-MSG x", ":p :only trailing"]
)
def test_garbage_is_not_a_message(line: str) -> None:
    assert parse_line(line) is None


@given(st.text())
def test_parse_line_never_raises(line: str) -> None:
    parse_line(line)


def test_nick_of_a_prefix() -> None:
    assert Message("bob!b@h", "X", ()).nick == "bob"
    assert Message("irc.example.org", "X", ()).nick == "irc.example.org"
    assert Message(None, "X", ()).nick is None


@pytest.mark.parametrize(
    ("name", "mapping", "folded"),
    [
        ("Bob[]\\~", "rfc1459", "bob{}|^"),
        ("Bob[]\\~", "strict-rfc1459", "bob{}|~"),
        ("Bob[]\\~", "ascii", "bob[]\\~"),
        ("ÉLAN", "ascii", "Élan"),
    ],
)
def test_casefold(name: str, mapping: str, folded: str) -> None:
    assert casefold(name, mapping) == folded


def test_relay_budget_counts_bytes() -> None:
    prefix = ":alice!~alice@127.0.0.1 PRIVMSG bob :"
    assert relay_budget("alice", "~alice", "127.0.0.1", "bob") == 512 - len(prefix) - 2
    assert relay_budget("é", "u", "h", "t") == relay_budget("ab", "u", "h", "t")


@given(st.text(), st.integers(min_value=4, max_value=600))
def test_split_utf8_keeps_every_character_within_the_limit(text: str, limit: int) -> None:
    pieces = split_utf8(text, limit)
    assert "".join(pieces) == text
    assert all(0 < len(piece.encode("utf-8")) <= limit for piece in pieces)


def test_split_utf8_prefers_spaces() -> None:
    assert split_utf8("aaaa bbbb", 7) == ["aaaa ", "bbbb"]
    with pytest.raises(ValueError):
        split_utf8("x", 3)


def test_invalid_nicks_are_refused() -> None:
    for nick in ("", "a b", "#chan", "a,b", "x\r\ny"):
        with pytest.raises(ValueError):
            IRCTransport("h", nick=nick)


def test_account_name_and_default_ports() -> None:
    assert IRCTransport("irc.example.org", nick="Al").account_name == "Al@irc.example.org"
    assert IRCTransport("h", nick="a").port == 6667
    assert IRCTransport("h", nick="a", tls=True).port == 6697
    assert IRCTransport("h", nick="a").protocol == "prpl-irc"


# -- a scripted server ---------------------------------------------------------------


class FakeServer:
    """One client connection; the test reads what it sent and writes replies."""

    def __init__(self) -> None:
        self.connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )
        self.received: list[str] = []
        self.times: list[float] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not self.connected.done():
                self.connected.set_result((reader, writer))

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def line(self, timeout: float = 5.0) -> str:
        reader, _ = await self.connected
        raw = await asyncio.wait_for(reader.readline(), timeout)
        assert raw.endswith(b"\r\n"), raw
        assert len(raw) <= 512
        text = raw.decode("utf-8").rstrip("\r\n")
        self.received.append(text)
        self.times.append(time.monotonic())
        return text

    async def expect(self, prefix: str) -> str:
        while True:
            text = await self.line()
            if text.startswith(prefix):
                return text

    async def send(self, *lines: str | bytes) -> None:
        _, writer = await self.connected
        for line in lines:
            writer.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        await writer.drain()

    async def welcome(self, nick: str = "alice", mask: str = "alice!~alice@example.net") -> None:
        await self.expect("USER ")
        await self.send(
            f":irc.test 001 {nick} :Welcome to the network {mask}",
            f":irc.test 005 {nick} CASEMAPPING=ascii NICKLEN=20 CHANTYPES=# :are supported",
        )

    async def close(self) -> None:
        if self.connected.done():
            _, writer = self.connected.result()
            writer.close()
        if self.server is not None:
            self.server.close()


def run(test: Callable[[FakeServer], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        server = FakeServer()
        await server.start()
        try:
            await asyncio.wait_for(test(server), 30)
        finally:
            await server.close()

    asyncio.run(main())


async def next_event(transport: IRCTransport, timeout: float = 5.0) -> Any:
    iterator = transport.events().__aiter__()
    return await asyncio.wait_for(iterator.__anext__(), timeout)


async def connected(server: FakeServer, **options: Any) -> IRCTransport:
    transport = IRCTransport("127.0.0.1", server.port, nick="alice", **options)
    connecting = asyncio.ensure_future(transport.connect())
    await server.welcome()
    await connecting
    return transport


# -- registration ----------------------------------------------------------------------


def test_registration_learns_user_host_and_isupport() -> None:
    async def test(server: FakeServer) -> None:
        transport = IRCTransport("127.0.0.1", server.port, nick="Alice", password="pw")
        connecting = asyncio.ensure_future(transport.connect())
        assert await server.line() == "PASS pw"
        assert await server.line() == "NICK Alice"
        assert (await server.line()).startswith("USER alice 0 * :")
        assumed = transport.max_message_size("bob")
        await server.send(
            ":irc.test NOTICE * :*** Looking up your hostname",
            "PING :reg-check",
        )
        assert await server.line() == "PONG :reg-check"
        await server.send(
            ":irc.test 001 Alice :Welcome Alice!~alice@example.net",
            ":irc.test 005 Alice CASEMAPPING=ascii NICKLEN=20 :are supported",
        )
        await connecting
        assert transport.user_host == ("~alice", "example.net")
        assert transport.max_message_size("bob") == relay_budget(
            "Alice", "~alice", "example.net", "bob"
        )
        # Until the host was known, the budget assumed the longest one.
        assert assumed == relay_budget("Alice", "~alice", "x" * ASSUMED_HOST_LENGTH, "bob")
        assert assumed < transport.max_message_size("bob")
        assert await server.expect("USERHOST") == "USERHOST Alice"
        await server.send(":irc.test 005 Alice CASEMAPPING=rfc1459 :are supported")
        await server.send(":irc.test 302 Alice :Alice=+alice@cloak/alice")
        await server.send("PING :sync")
        await server.expect("PONG :sync")
        assert transport.user_host == ("alice", "cloak/alice")
        assert transport.normalize("B[o]b") == "b{o}b"
        await server.send(":irc.test 396 Alice hidden.host :is now your displayed host")
        await server.send("PING :sync2")
        await server.expect("PONG :sync2")
        assert transport.user_host == ("alice", "hidden.host")
        await transport.close()

    run(test)


def test_nick_in_use_tries_another() -> None:
    async def test(server: FakeServer) -> None:
        transport = IRCTransport("127.0.0.1", server.port, nick="alice")
        connecting = asyncio.ensure_future(transport.connect())
        await server.expect("USER")
        await server.send(":irc.test 433 * alice :Nickname already in use")
        assert await server.line() == "NICK alice_"
        await server.send(":irc.test 433 * alice_ :Nickname already in use")
        assert await server.line() == "NICK alice2"
        await server.send(":irc.test 001 alice2 :Welcome alice2!a@h")
        await connecting
        assert transport.nick == "alice2"
        assert transport.account_name == "alice@127.0.0.1"  # keys stay with the wanted nick
        await transport.close()

    run(test)


def test_refusals_during_registration_are_errors() -> None:
    async def test(server: FakeServer) -> None:
        transport = IRCTransport("127.0.0.1", server.port, nick="alice")
        connecting = asyncio.ensure_future(transport.connect())
        await server.expect("USER")
        await server.send(":irc.test 464 alice :Password incorrect")
        with pytest.raises(TransportError, match="Password incorrect"):
            await connecting

    run(test)


def test_erroneous_nick_is_an_error() -> None:
    async def test(server: FakeServer) -> None:
        transport = IRCTransport("127.0.0.1", server.port, nick="alice")
        connecting = asyncio.ensure_future(transport.connect())
        await server.expect("USER")
        await server.send(":irc.test 432 * alice :Erroneous nickname")
        with pytest.raises(TransportError, match="does not accept the nick"):
            await connecting

    run(test)


def test_a_silent_server_times_out() -> None:
    async def test(server: FakeServer) -> None:
        transport = IRCTransport("127.0.0.1", server.port, nick="a", registration_timeout=0.3)
        with pytest.raises(TransportError, match="timed out"):
            await transport.connect()

    run(test)


def test_connection_refused_is_an_error() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(TransportError, match="cannot connect"):
            await IRCTransport("127.0.0.1", port, nick="a").connect()

    asyncio.run(main())


# -- receiving -------------------------------------------------------------------------


def test_private_messages_are_delivered_and_the_rest_ignored() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server)
        await server.send(
            b"\xff\xfe garbage that is not IRC\r\n",
            ":bob!b@h PRIVMSG #chan :channel chatter",
            ":bob!b@h PRIVMSG carol :not for us",
            ":irc.test PRIVMSG alice :from the server",
            ":bob!b@h PRIVMSG alice :\x01VERSION\x01",
            ":bob!b@h PRIVMSG alice :\x01PING 123\x01",
            ":bob!b@h PRIVMSG alice",
            b":x!y@z PRIVMSG alice :" + b"A" * 20000 + b"\r\n",
            b":bob!b@h PRIVMSG alice :caf\xe9 latin-1\r\n",
            ":BOB!b@h PRIVMSG ALICE :?OTRv3?",
            ":bob!b@h PRIVMSG alice :\x01ACTION waves\x01",
            "@tag=1 :bob!b@h PRIVMSG alice :tagged",
            ":bob!b@h NOTICE alice :a notice",
            ":irc.test 401 alice nobody :No such nick/channel",
            ":irc.test 301 alice bob :gone fishing",
        )
        events = [await next_event(transport) for _ in range(7)]
        assert events == [
            Delivered("bob", "café latin-1"),
            Delivered("bob", "?OTRv3?"),
            Delivered("bob", "/me waves"),
            Delivered("bob", "tagged"),
            Notice("bob", "a notice"),
            Notice("nobody", "No such nick/channel"),
            Notice("bob", "is away: gone fishing"),
        ]
        # CTCP queries are never answered.
        await server.send("PING :after")
        assert await server.expect("PONG") == "PONG :after"
        assert not any("VERSION" in line or "NOTICE" in line for line in server.received)
        await transport.close()

    run(test)


def test_our_nick_change_is_followed() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server)
        await server.send(":alice!~alice@example.net NICK :alice_away")
        await server.send(":bob!b@h PRIVMSG alice_away :still me")
        assert await next_event(transport) == Delivered("bob", "still me")
        assert transport.nick == "alice_away"
        await transport.close()

    run(test)


def test_server_error_ends_the_connection() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server)
        await server.send("ERROR :Closing Link: (K-lined)")
        assert await next_event(transport) == Disconnected("Closing Link: (K-lined)")
        with pytest.raises(TransportError):
            await transport.send("bob", "hi", otr=False)
        await transport.close()

    run(test)


def test_server_closing_is_a_disconnect() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server)
        _, writer = await server.connected
        writer.close()
        event = await next_event(transport)
        assert isinstance(event, Disconnected)
        await transport.close()

    run(test)


# -- sending ---------------------------------------------------------------------------


def test_long_messages_are_split_to_the_relay_budget() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server, interval=0.0)
        budget = transport.max_message_size("bob")
        text = "é" * 600  # 1200 bytes
        await transport.send("bob", text, otr=False)
        await transport.send("bob", "line one\nline two\n\n", otr=False)
        await transport.send("bob", "?OTRv23?\nalice has requested", otr=True)
        lines = [await server.expect("PRIVMSG") for _ in range(6)]
        pieces = [line.split(" :", 1)[1] for line in lines]
        assert "".join(pieces[:3]) == text
        assert all(len(p.encode()) <= budget for p in pieces)
        assert pieces[3:] == ["line one", "line two", "?OTRv23? alice has requested"]
        # The line bob receives fits in 512 bytes with the prefix the server adds.
        relayed = f":alice!~alice@example.net PRIVMSG bob :{pieces[0]}\r\n"
        assert len(relayed.encode()) <= 512
        await transport.close()

    run(test)


def test_lines_are_paced_after_a_burst() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server, burst=3, interval=0.2)
        await server.expect("USERHOST")  # the first line of the burst
        for i in range(6):
            await transport.send("bob", f"m{i}", otr=True)
        for _ in range(6):
            await server.expect("PRIVMSG")
        times = server.times[-6:]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] < 0.1  # the rest of the burst at once
        assert all(gap >= 0.15 for gap in gaps[2:])  # then one per interval
        await server.send("PING :x")  # PONG never waits in the queue
        assert await server.expect("PONG") == "PONG :x"
        await transport.close()

    run(test)


def test_close_sends_what_is_queued_then_quits() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server, burst=1, interval=0.05)
        for i in range(4):
            await transport.send("bob", f"m{i}", otr=True)
        await transport.close()
        rest = []
        while True:
            line = await server.line()
            rest.append(line)
            if line.startswith("QUIT"):
                break
        assert [line for line in rest if line.startswith("PRIVMSG")] == [
            f"PRIVMSG bob :m{i}" for i in range(4)
        ]
        await transport.close()  # twice is fine

    run(test)


def test_control_characters_never_break_a_line() -> None:
    async def test(server: FakeServer) -> None:
        transport = await connected(server, interval=0.0)
        await transport.send("bob", "a\0b\rc", otr=False)
        assert await server.expect("PRIVMSG") == "PRIVMSG bob :ab"
        assert await server.expect("PRIVMSG") == "PRIVMSG bob :c"
        with pytest.raises(TransportError):
            await transport.send("bob carol", "x", otr=False)
        await transport.close()

    run(test)


# -- TLS -------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)

    async def main() -> None:
        server = FakeServer()
        await server.start(server_context)
        try:
            untrusted = IRCTransport("127.0.0.1", server.port, nick="alice", tls=True)
            with pytest.raises(TransportError, match="certificate"):
                await untrusted.connect()
            trusting = ssl.create_default_context(cafile=str(cert))
            transport = IRCTransport(
                "127.0.0.1", server.port, nick="alice", tls=True, ssl_context=trusting
            )
            server.connected = asyncio.get_running_loop().create_future()
            connecting = asyncio.ensure_future(transport.connect())
            await server.welcome()
            await connecting
            await transport.send("bob", "over tls", otr=False)
            assert await server.expect("PRIVMSG") == "PRIVMSG bob :over tls"
            await transport.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_transport_logs_no_message_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def test(server: FakeServer) -> None:
        transport = await connected(server, interval=0.0)
        await transport.send("bob", "outgoing-words", otr=False)
        await server.expect("PRIVMSG")
        await server.send(
            ":bob!b@h PRIVMSG alice :incoming-words",
            ":bob!b@h NOTICE alice :notice-words",
            ":bob!b@h PRIVMSG alice :\x01ACTION action-words\x01",
        )
        for _ in range(3):
            await next_event(transport)
        await transport.close()

    run(test)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for words in ("outgoing-words", "incoming-words", "notice-words", "action-words"):
        assert words not in logged
