"""Compiled builds of the hot-path modules, used only while they match their source.

``scripts/build_native.py`` compiles ``MODULES`` with mypyc, next to their source, and writes ``MANIFEST``: the
SHA-256 of each module's source as compiled. Python imports an extension module before a ``.py`` of the same
name, so a build left behind by an edit would run the old code: for a rule, an old clinical decision. At
package import ``guard()`` therefore compares the manifest with the sources. When any compiled module is not
vouched for, every compiled module is loaded from source instead: compiled modules call each other directly,
so keeping some of them compiled could still reach the stale code.

Standard library only: this runs before anything else of the package is imported.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "native-build.json"
MODULES = (
    "cds_service.json_limits",
    "cds_service.orders",
    "cds_service.terminology",
    "cds_service.snapshot.fhirjson",
    "cds_service.snapshot.units",
    "cds_service.snapshot.labs",
    "cds_service.snapshot.medications",
    "cds_service.snapshot.order_details",
    "cds_service.snapshot.build",
    "cds_service.snapshot.model",
    "cds_service.rules.base",
    "cds_service.rules.blood_counts",
    "cds_service.rules.dose",
    "cds_service.rules.duplicates",
    "cds_service.rules.indication",
    "cds_service.rules.interactions",
    "cds_service.rules.menopause",
    "cds_service.rules.partner",
    "cds_service.rules.partner_menopause",
    "cds_service.rules.receptors",
    "cds_service.rules.safety",
    "cds_service.rules.safety_common",
    "cds_service.rules.safety_organs",
    "cds_service.rules.safety_pregnancy",
)
"""What is compiled: the code that reads every resource of a call (the walk over the body, the snapshot and
its model classes, whose written ``__init__``s become native constructors), and the rules that read the snapshot.
A compiled module must not use ``__file__``: in a build whose shared library sits inside the package, mypyc
gives it a wrong path (``terminology`` finds its value sets from ``PACKAGE``, defined here)."""

status = "source: not built"
"""How this process runs ``MODULES``: ``compiled``, or from source and why (logged at start-up)."""


def source_path(module: str) -> Path:
    return PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_modules() -> dict[str, Path]:
    """Modules of the package with an extension module beside their source: what Python would import."""
    found: dict[str, Path] = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for extension in PACKAGE.rglob(f"*{suffix}"):
            source = extension.with_name(extension.name.removesuffix(suffix) + ".py")
            if source.exists():
                relative = source.relative_to(PACKAGE.parent).with_suffix("")
                found[".".join(relative.parts)] = extension
    return found


def stale(compiled: Sequence[str]) -> list[str]:
    """Compiled modules whose source is not the source the manifest says was compiled."""
    try:
        vouched = json.loads(MANIFEST.read_text())["sources"]
        if not isinstance(vouched, dict):
            vouched = {}
    except (OSError, ValueError, KeyError, TypeError):
        vouched = {}
    return [name for name in compiled if vouched.get(name) != digest(source_path(name))]


class _FromSource:
    """A meta path finder: ``names`` as their ``.py`` source, ahead of the extension modules beside them.
    (Not an ``importlib.abc`` subclass: that import alone takes 20 ms, on every start of every command.)"""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def guard() -> str:
    """Load every compiled module from source unless the manifest vouches for all of them."""
    global status
    compiled = sorted(compiled_modules())
    if not compiled:
        status = "source: not built"
        return status
    outdated = stale(compiled)
    if not outdated:
        status = "compiled"
        return status
    if not any(isinstance(finder, _FromSource) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FromSource(frozenset(compiled)))
    status = "source: the compiled build is older than " + ", ".join(outdated) + " (run scripts/build_native.py)"
    return status
