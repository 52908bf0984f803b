"""A private Prosody XMPP server for the integration tests.

Each server lives in a temporary directory: its own configuration, data,
log, and a certificate for the test domain signed by a CA generated on the
spot (clients trust that CA through ``ca_file``; the system trust store is
never touched).  It listens only on a random free loopback port, has no
server-to-server or HTTP service, and logs every stanza it receives
(``mod_stanza_debug``) so a test can check what the network really saw.

Debian's prosody refuses to start as root unless ``run_as_root`` is set
(mod_posix), and ``prosodyctl`` would otherwise switch to the ``prosody``
user, who could not read the temporary files; the configuration sets it,
which is harmless here: the server binds a loopback port only.  Prosody
runs in the foreground (``-F``) as a child of the test, never as the
system service.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "DOMAIN",
    "MISMATCHED_DOMAIN",
    "PLAIN_DOMAIN",
    "Prosody",
    "prosody_server",
    "start_prosody",
]

DOMAIN = "offrecord.test"
MISMATCHED_DOMAIN = "mismatch.test"
PLAIN_DOMAIN = "plain.test"
START_TIMEOUT = 15.0


@dataclass
class Prosody:
    """A running server: where it listens, whom it knows, what it logged."""

    host: str
    port: int
    domain: str
    ca_file: Path
    directory: Path
    process: subprocess.Popen[bytes]
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def log_file(self) -> Path:
        return self.directory / "prosody.log"

    @property
    def config_file(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def register(self, user: str, password: str) -> str:
        """Create an account (works while the server runs); returns its JID."""
        _prosodyctl(self.config_file, "register", user, self.domain, password)
        self.passwords[user] = password
        return self.jid(user)

    def received_bodies(self) -> list[tuple[str, str]]:
        """(sender's full JID, body) of every message stanza the server
        received from a client, in order, as its debug log recorded them."""
        log = self.log_file.read_text(encoding="utf-8", errors="replace")
        found: list[tuple[str, str]] = []
        for stanza in re.findall(r"RECV: (<message\b.*?</message>)", log, re.DOTALL):
            body = re.search(r"<body>(.*?)</body>", stanza, re.DOTALL)
            if body is None:
                continue
            sender = re.search(r"""\bfrom=['"]([^'"]*)['"]""", stanza)
            found.append((sender.group(1) if sender else "", _unescape(body.group(1))))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _unescape(text: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


def _prosodyctl(config: Path, *args: str) -> None:
    result = subprocess.run(
        ["prosodyctl", "--config", str(config), *args],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"prosodyctl {args[0]} failed: {result.stdout.decode()} {result.stderr.decode()}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_certificates(directory: Path, domain: str) -> Path:
    """A CA and a certificate for ``domain`` it signed (``domain.crt``/``.key``,
    where Prosody looks for them); returns the CA certificate's path."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "offrecord test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs = directory / "certs"
    certs.mkdir()
    (certs / f"{domain}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (certs / f"{domain}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for suffix in ("crt", "key"):
        shutil.copy(certs / f"{domain}.{suffix}", certs / f"{MISMATCHED_DOMAIN}.{suffix}")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_file


def _config(directory: Path, port: int, domain: str) -> str:
    return f"""-- written by tests/integration/prosody.py
run_as_root = true
pidfile = "{directory}/prosody.pid"
data_path = "{directory}/data"
certificates = "{directory}/certs"
plugin_paths = {{}}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "carbons"; "stanza_debug"; }}
modules_disabled = {{ "s2s"; "s2s_auth_certs"; "offline"; }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{}}
legacy_ssl_ports = {{}}
c2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
log = {{
    {{ levels = {{ min = "debug" }}, to = "file", filename = "{directory}/prosody.log" }};
    {{ levels = {{ min = "error" }}, to = "file", filename = "{directory}/errors.log" }};
}}
VirtualHost "{domain}"

-- Serves the certificate of {domain}: a client must refuse it for this name.
VirtualHost "{MISMATCHED_DOMAIN}"

-- Has no certificate, so no STARTTLS: a client must refuse to log in.
VirtualHost "{PLAIN_DOMAIN}"
    c2s_require_encryption = false
    modules_disabled = {{ "tls"; "s2s"; "s2s_auth_certs"; "offline"; }}
"""


def _wait_listening(server: Prosody) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(server.address, 0.5):
            return
        time.sleep(0.05)
    server.stop()
    log = server.log_file.read_text(errors="replace") if server.log_file.exists() else ""
    raise RuntimeError(f"prosody did not start listening on {server.address}:\n{log[-3000:]}")


def start_prosody(directory: Path, users: dict[str, str], domain: str = DOMAIN) -> Prosody:
    """Start a server in ``directory`` (which must exist and be empty) with
    the given accounts (user -> password)."""
    if shutil.which("prosody") is None or shutil.which("prosodyctl") is None:
        raise RuntimeError("prosody is not installed (scripts/bootstrap.sh --system installs it)")
    ca_file = write_certificates(directory, domain)
    (directory / "data").mkdir()
    port = _free_port()
    config = directory / "prosody.cfg.lua"
    config.write_text(_config(directory, port, domain), encoding="utf-8")
    for user, password in users.items():
        _prosodyctl(config, "register", user, domain, password)
    _prosodyctl(config, "register", "alice", PLAIN_DOMAIN, "alice-secret")
    process = subprocess.Popen(
        ["prosody", "--config", str(config), "-F"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=directory,
    )
    server = Prosody("127.0.0.1", port, domain, ca_file, directory, process, dict(users))
    _wait_listening(server)
    return server


@pytest.fixture
def prosody_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    """A fresh Prosody with the accounts alice and bob (see ``passwords``)."""
    directory = tmp_path_factory.mktemp("prosody")
    server = start_prosody(directory, {"alice": "alice-secret", "bob": "bob-secret"})
    try:
        yield server
    finally:
        server.stop()
