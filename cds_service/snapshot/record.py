"""``fast_init``: frozen, slotted dataclasses that are cheap to build.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, about 0.15 µs a field; a
hook call builds some hundreds of snapshot objects (a Code per coding, a LabResult and an Evidence per
Observation), and that was a fifth of the snapshot's time. The ``__init__`` made here writes each slot
through its descriptor instead. Everything else is the dataclass's own: the instance stays frozen
(assignment raises ``FrozenInstanceError``), hashable, comparable and printable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import FunctionType
from typing import Any


def fast_init(*classes: type[Any]) -> None:
    """Give each frozen, slotted dataclass the descriptor-writing ``__init__``, unless its ``__init__`` is native.

    Called after the class statements (mypyc compiles only a literal ``@dataclass``): compiled, an ``__init__``
    written in the class is native code and is kept; run from source, it (or the one ``dataclasses`` made) is
    a Python function and is replaced."""
    for cls in classes:
        if isinstance(cls.__init__, FunctionType):
            cls.__init__ = _fast_init(cls)


def _fast_init(cls: type[Any]) -> Callable[..., None]:
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init does not run __post_init__")
    names: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params: list[str] = []
    lines: list[str] = []
    for field in dataclasses.fields(cls):
        if not field.init or field.kw_only:
            raise TypeError(f"{cls.__name__}.{field.name}: fast_init supports plain positional fields only")
        setter = f"_set_{field.name}"
        names[setter] = cls.__dict__[field.name].__set__
        if field.default is not dataclasses.MISSING:
            names[f"_default_{field.name}"] = field.default
            params.append(f"{field.name}=_default_{field.name}")
        elif field.default_factory is not dataclasses.MISSING:
            names[f"_factory_{field.name}"] = field.default_factory
            params.append(f"{field.name}=_MISSING")
            lines.append(f"    if {field.name} is _MISSING: {field.name} = _factory_{field.name}()")
        else:
            params.append(field.name)
        lines.append(f"    {setter}(self, {field.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines or ["    pass"]) + "\n"
    exec(source, names)  # the way dataclasses itself builds __init__
    init: Callable[..., None] = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init
