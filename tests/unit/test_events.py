"""Events are frozen, slotted dataclasses whose constructor behaves exactly as
the dataclass one would (events.py writes a faster ``__init__``)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from offrecord import events as ev
from offrecord.wire.tlv import TLV, TLVType

EVENT_CLASSES = [
    cls
    for _, cls in inspect.getmembers(ev, inspect.isclass)
    if issubclass(cls, ev.Event) and cls.__module__ == ev.__name__
]


def _sample(field: dataclasses.Field[Any], index: int) -> Any:
    kind = str(field.type)
    if "bytes" in kind:
        return bytes([index]) * 3
    if "str" in kind:
        return f"value {index}"
    if "bool" in kind:
        return index % 2 == 0
    if "int" in kind:
        return 1000 + index
    if "TLV" in kind:
        return (TLV(TLVType.PADDING, b"\x00"),)
    return f"value {index}"


def test_every_event_module_class_is_covered() -> None:
    assert len(EVENT_CLASSES) == len(ev.__all__)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_events_are_frozen_slotted_dataclasses(cls: type[ev.Event]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert "__slots__" in vars(cls)
    fields = dataclasses.fields(cls)
    values = {f.name: _sample(f, i) for i, f in enumerate(fields)}
    event = cls(**values)
    assert not hasattr(event, "__dict__")
    for f in fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, f.name, values[f.name])
    hash(event)  # frozen dataclasses hash by value


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_event_constructor_matches_the_dataclass_one(cls: type[ev.Event]) -> None:
    fields = dataclasses.fields(cls)
    values = {f.name: _sample(f, i) for i, f in enumerate(fields)}
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    assert by_keyword == by_position
    for f in fields:
        assert getattr(by_keyword, f.name) == values[f.name]
    # Defaults are the declared ones, and only fields without one are required.
    required = {f.name: values[f.name] for f in fields if f.default is dataclasses.MISSING}
    minimal = cls(**required)
    for f in fields:
        expected = values[f.name] if f.name in required else f.default
        assert getattr(minimal, f.name) == expected
    if required:
        with pytest.raises(TypeError):
            cls()
    with pytest.raises(TypeError):
        cls(*values.values(), "one too many")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        cls(**values, unknown_field=1)  # type: ignore[call-arg]
    # replace() goes through the constructor too.
    if fields:
        first = fields[0]
        changed = dataclasses.replace(by_keyword, **{first.name: values[first.name]})
        assert changed == by_keyword


def test_message_received_repr_hides_the_text() -> None:
    event = ev.MessageReceived("the secret plan", True, instance=0x1234)
    assert "secret" not in repr(event)
    assert event.text == "the secret plan"
    assert event == ev.MessageReceived("the secret plan", True, False, 0x1234, ())
    assert event != ev.MessageReceived("another plan", True, False, 0x1234, ())


def test_the_event_decorator_refuses_what_its_constructor_cannot_do() -> None:
    from dataclasses import field as dc_field

    with pytest.raises(TypeError):

        @ev._event
        class WithFactory(ev.Event):
            items: list[int] = dc_field(default_factory=list)

    with pytest.raises(TypeError):

        @ev._event
        class WithPostInit(ev.Event):
            value: int

            def __post_init__(self) -> None:
                pass
