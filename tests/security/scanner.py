"""Find secrets in text: every way a key, a number or a message could have
been written out by careless code (decimal, hex, base64, raw bytes, Python's
bytes repr).

A :class:`SecretScanner` is given named secrets and then searches text
gathered from logs, ``repr()``/``str()`` and exception messages.  Hex and
base64 are also searched with separators (blanks, colons, dashes, newlines)
removed, so a value printed in groups is still found.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

__all__ = ["Finding", "SecretScanner", "representations"]

# Shorter values could turn up by chance (and no secret of offrecord's is shorter).
MIN_SECRET_BYTES = 8
_SEPARATORS = re.compile(r"[\s:\-_,.]+")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _base64_forms(raw: bytes) -> set[str]:
    """Base64 of ``raw`` at each of the three alignments it can have inside a
    longer encoded stream, trimmed to the characters that depend on ``raw``
    alone (standard and URL-safe alphabets)."""
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode("ascii").rstrip("=")
        # the first group holding prefix bits and the last, partial group
        core = encoded[4 if offset else 0 : len(encoded) - 4]
        if len(core) >= 8:
            forms.add(core)
            forms.add(core.replace("+", "-").replace("/", "_"))
    return forms


def representations(secret: int | bytes | str) -> dict[str, str]:
    """Every textual form of ``secret`` searched for, keyed by a label."""
    forms: dict[str, str] = {}
    if isinstance(secret, str):
        forms["text"] = secret
        raw = secret.encode("utf-8")
    elif isinstance(secret, int):
        raw = _int_bytes(secret)
        forms["decimal"] = str(secret)
    else:
        raw = bytes(secret)
        value = int.from_bytes(raw, "big")
        if value:
            forms["decimal"] = str(value)
            forms["hex (as a number)"] = format(value, "x")
    forms["hex"] = raw.hex()
    forms["HEX"] = raw.hex().upper()
    forms["raw bytes"] = raw.decode("latin-1")
    forms["bytes repr"] = repr(raw)[2:-1]
    for i, form in enumerate(sorted(_base64_forms(raw))):
        forms[f"base64 #{i}"] = form
    # drop forms too short to be meaningful (a short decimal, say)
    return {label: form for label, form in forms.items() if len(form) >= 2 * MIN_SECRET_BYTES}


@dataclass(frozen=True)
class Finding:
    secret: str
    form: str
    where: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.where}"


@dataclass
class SecretScanner:
    secrets: dict[str, int | bytes | str] = field(default_factory=dict)

    def add(self, name: str, secret: int | bytes | str) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if isinstance(raw, int):
            raw = _int_bytes(raw)
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(f"{name} is too short to scan for reliably")
        self.secrets.setdefault(f"{name} #{len(self.secrets)}", secret)

    def scan(self, texts: list[tuple[str, str]]) -> list[Finding]:
        """Each (secret, form, place) found in ``texts`` (place, text) pairs."""
        joined = "\x00".join(text for _, text in texts)
        compact = "\x00".join(_SEPARATORS.sub("", text) for _, text in texts)
        findings: list[Finding] = []
        for name, secret in self.secrets.items():
            for label, form in representations(secret).items():
                searchable = label.startswith(("hex", "HEX", "base64", "decimal"))
                if form in joined or (searchable and form in compact):
                    findings.append(Finding(name, label, self._where(texts, form)))
        return findings

    @staticmethod
    def _where(texts: list[tuple[str, str]], form: str) -> str:
        for place, text in texts:
            if form in text or form in _SEPARATORS.sub("", text):
                return place
        return "(across texts)"
