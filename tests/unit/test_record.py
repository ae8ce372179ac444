"""``@record`` builds snapshot objects faster than a frozen dataclass, and must behave exactly like one."""

from __future__ import annotations

import dataclasses
from dataclasses import field

import pytest

from cds_service.snapshot.model import Code, Evidence, LabResult
from cds_service.snapshot.record import record


@record
class Sample:
    name: str
    value: float | None = None
    tags: tuple[str, ...] = ()
    seen: list[str] = field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    name: str
    value: float | None = None
    tags: tuple[str, ...] = ()
    seen: list[str] = field(default_factory=list)


def test_fields_defaults_and_factories_are_set_as_a_dataclass_sets_them() -> None:
    for args, kwargs in [(("a",), {}), (("a", 1.5), {"tags": ("x",)}), ((), {"name": "b", "seen": ["y"]})]:
        ours, theirs = Sample(*args, **kwargs), Reference(*args, **kwargs)  # type: ignore[arg-type]
        assert dataclasses.astuple(ours) == dataclasses.astuple(theirs)
        assert repr(ours).removeprefix("Sample") == repr(theirs).removeprefix("Reference")


def test_a_default_factory_gives_each_instance_its_own_value() -> None:
    first, second = Sample("a"), Sample("b")
    assert first.seen == []
    assert first.seen is not second.seen


def test_an_instance_is_frozen_slotted_hashable_and_compared_by_value() -> None:
    code = Code("http://loinc.org", "751-8", "Neutrophils")
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.code = "other"  # type: ignore[misc]
    assert not hasattr(code, "__dict__")
    assert code == Code("http://loinc.org", "751-8", "Neutrophils") != Code("http://loinc.org", "751-8")
    assert len({code, Code("http://loinc.org", "751-8", "Neutrophils")}) == 1


def test_wrong_arguments_are_refused_as_by_a_dataclass() -> None:
    with pytest.raises(TypeError):
        Sample()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Sample("a", unknown=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Sample("a", 1.0, (), [], "extra")  # type: ignore[call-arg]


def test_the_snapshot_models_use_the_fast_constructor() -> None:
    for model in (Code, Evidence, LabResult):
        assert model.__init__.__code__.co_filename == "<string>"
        assert "_set_" in " ".join(model.__init__.__code__.co_names)


def test_what_the_fast_constructor_cannot_honour_is_refused() -> None:
    with pytest.raises(TypeError, match="__post_init__"):

        @record
        class WithPostInit:
            name: str

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="positional"):

        @record
        class WithKeywordOnly:
            name: str = field(kw_only=True)
