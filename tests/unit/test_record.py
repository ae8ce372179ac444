"""``fast_init`` builds snapshot objects faster than a frozen dataclass, and must behave exactly like one."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import field
from types import FunctionType

import pytest

from cds_service import native
from cds_service.snapshot import model
from cds_service.snapshot.model import Code
from cds_service.snapshot.record import fast_init


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    name: str
    value: float | None = None
    tags: tuple[str, ...] = ()
    seen: list[str] = field(default_factory=list)


fast_init(Sample)


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


WRITTEN_INIT = ("Evidence", "Code", "LabResult")
"""The snapshot models that write their own ``__init__`` (native when compiled)."""


def _fast(init: object) -> bool:
    code = getattr(init, "__code__", None)
    return code is not None and code.co_filename == "<string>" and "_set_" in " ".join(code.co_names)


def test_the_snapshot_models_use_a_native_or_the_fast_constructor() -> None:
    compiled = native.status == "compiled"
    for name, cls in vars(model).items():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == model.__name__:
            if compiled and name in WRITTEN_INIT:
                assert not isinstance(cls.__init__, FunctionType), name  # mypyc's native __init__
            else:
                assert _fast(cls.__init__), name


def test_a_written_init_takes_exactly_the_fields_with_their_defaults() -> None:
    """Run from source, the written ``__init__`` is replaced by one made from the fields: both must agree."""
    tree = ast.parse(native.source_path(model.__name__).read_text())  # the source, also when compiled
    written = {
        node.name: item
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef) and item.name == "__init__"
    }
    assert set(written) == set(WRITTEN_INIT)
    for name, init in written.items():
        fields = dataclasses.fields(getattr(model, name))
        params = init.args.args[1:]
        assert [p.arg for p in params] == [f.name for f in fields], name
        with_default = [p.arg for p in params][len(params) - len(init.args.defaults) :]
        defaults = dict(zip(with_default, init.args.defaults, strict=True))
        for f in fields:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                assert f.name not in defaults, (name, f.name)
            else:
                expected = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                assert eval(ast.unparse(defaults[f.name]), vars(model)) == expected, (name, f.name)
        # The body is exactly ``self.<field> = <field>``, once per field, in order.
        assigned = [
            (stmt.targets[0].attr, stmt.value.id if isinstance(stmt.value, ast.Name) else ast.unparse(stmt.value))
            for stmt in init.body
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute)
        ]
        assert len(assigned) == len(init.body), name
        assert assigned == [(f.name, f.name) for f in fields], name


def test_what_the_fast_constructor_cannot_honour_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPostInit:
        name: str

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        fast_init(WithPostInit)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithKeywordOnly:
        name: str = field(kw_only=True)

    with pytest.raises(TypeError, match="positional"):
        fast_init(WithKeywordOnly)
