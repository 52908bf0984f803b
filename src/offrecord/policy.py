"""OTR policies, with libotr's names and bit values (libotr ``proto.h``)."""

from __future__ import annotations

from enum import IntFlag

__all__ = ["Policy"]


class Policy(IntFlag):
    """Policy flags; combine with ``|``.  Values equal libotr's ``OTRL_POLICY_*``."""

    NEVER = 0x00
    ALLOW_V1 = 0x01  # accepted for completeness; offrecord never speaks version 1
    ALLOW_V2 = 0x02
    ALLOW_V3 = 0x04
    REQUIRE_ENCRYPTION = 0x08
    SEND_WHITESPACE_TAG = 0x10
    WHITESPACE_START_AKE = 0x20
    ERROR_START_AKE = 0x40

    VERSION_MASK = ALLOW_V1 | ALLOW_V2 | ALLOW_V3
    MANUAL = ALLOW_V2 | ALLOW_V3
    OPPORTUNISTIC = (
        ALLOW_V2 | ALLOW_V3 | SEND_WHITESPACE_TAG | WHITESPACE_START_AKE | ERROR_START_AKE
    )
    ALWAYS = ALLOW_V2 | ALLOW_V3 | REQUIRE_ENCRYPTION | WHITESPACE_START_AKE | ERROR_START_AKE
    DEFAULT = OPPORTUNISTIC

    def allowed_versions(self) -> frozenset[int]:
        """The OTR versions this policy lets offrecord speak (2 and/or 3)."""
        # Asked for every message received: a table lookup, not flag arithmetic.
        return _ALLOWED_VERSIONS[int(self) & _SPOKEN_VERSIONS]

    @classmethod
    def preset(cls, name: str) -> Policy:
        """``never``, ``manual``, ``opportunistic`` or ``always`` (as in Pidgin's UI)."""
        presets = {
            "never": cls.NEVER,
            "manual": cls.MANUAL,
            "opportunistic": cls.OPPORTUNISTIC,
            "always": cls.ALWAYS,
        }
        try:
            return presets[name.lower()]
        except KeyError:
            raise ValueError(f"unknown policy preset {name!r}") from None


_SPOKEN_VERSIONS = int(Policy.ALLOW_V2 | Policy.ALLOW_V3)
_ALLOWED_VERSIONS = {
    0: frozenset[int](),
    int(Policy.ALLOW_V2): frozenset({2}),
    int(Policy.ALLOW_V3): frozenset({3}),
    int(Policy.ALLOW_V2 | Policy.ALLOW_V3): frozenset({2, 3}),
}
