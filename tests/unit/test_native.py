"""The compiled build (scripts/build_native.py) is used only while it matches its source.

The copies below are whole packages in a temporary folder, started in a child interpreter: an edited source
must be what runs, never the build made from the old one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service import native
from scripts.build_native import toolchain_missing
from tests.support import REPO

PROBE = (
    "import json, cds_service.native as n, cds_service.snapshot.units as u, cds_service.snapshot.labs as l;"
    "print(json.dumps({'status': n.status, 'units': u.__file__, 'labs': l.__file__,"
    " 'edited': getattr(u, 'EDITED', False)}))"
)
built = pytest.mark.skipif(not native.compiled_modules(), reason="no native build here (no C compiler)")


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "cds_service", tmp_path / "cds_service", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "scripts", tmp_path / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _probe(root: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_build_is_in_use_wherever_it_can_be_made() -> None:
    # scripts/setup builds before the tests run; a build that silently failed would leave the service slower.
    if toolchain_missing() is None:
        assert native.status == "compiled"
        assert set(native.compiled_modules()) == set(native.MODULES)
    else:
        assert native.status == "source: not built"


@built
def test_a_copy_of_the_build_runs_compiled(tmp_path: Path) -> None:
    seen = _probe(_copy(tmp_path))
    assert seen["status"] == "compiled"
    assert str(seen["units"]).endswith(".so")
    assert str(seen["labs"]).endswith(".so")


@built
def test_an_edited_source_runs_instead_of_its_stale_build_and_so_does_every_other(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    with (root / "cds_service" / "snapshot" / "units.py").open("a") as source:
        source.write("\nEDITED = True\n")
    seen = _probe(root)
    assert seen["edited"] is True
    assert str(seen["units"]).endswith("units.py")
    # labs.py is unchanged, but its build calls the stale units build directly: it runs from source too.
    assert str(seen["labs"]).endswith("labs.py")
    assert "cds_service.snapshot.units" in str(seen["status"])
    assert "labs" not in str(seen["status"])


@built
def test_a_build_without_its_manifest_is_not_used(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "cds_service" / native.MANIFEST.name).unlink()
    seen = _probe(root)
    assert str(seen["status"]).startswith("source: the compiled build is older than")
    assert str(seen["labs"]).endswith("labs.py")


@built
def test_clean_removes_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    subprocess.run([sys.executable, "scripts/build_native.py", "--clean"], cwd=root, check=True, capture_output=True)
    assert not list((root / "cds_service").rglob("*.so"))
    assert _probe(root)["status"] == "source: not built"
