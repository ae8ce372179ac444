"""Compile the hot-path modules (``cds_service.native.MODULES``) with mypyc, in place, and write the manifest.

    .venv/bin/python scripts/build_native.py           # build, unless the manifest already matches the sources
    .venv/bin/python scripts/build_native.py --force   # build again
    .venv/bin/python scripts/build_native.py --clean   # remove the build: every module runs from source

The same source runs with or without the build; compiled, a hook call executes about two fifths fewer instructions
(docs/performance.md). Without a C compiler and Python's headers the build is skipped and says so; the
service then runs from source. The manifest records the SHA-256 of each source as compiled, so
``cds_service.native`` can refuse a build that an edit has made stale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cds_service import native  # noqa: E402

GROUP = "cds_service.native_build"
"""mypyc's shared library for the group: ``cds_service/native_build__mypyc.*.so``."""


def toolchain_missing() -> str | None:
    compiler = sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        return f"no C compiler ({compiler.split()[0]})"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include})"
    try:
        import mypyc.build  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[dev]')"
    return None


def sources() -> dict[str, str]:
    return {name: native.digest(native.source_path(name)) for name in native.MODULES}


def up_to_date() -> bool:
    built = native.compiled_modules()
    return set(built) == set(native.MODULES) and not native.stale(sorted(built))


def clean() -> list[Path]:
    removed = [*native.compiled_modules().values(), *native.PACKAGE.glob("native_build__mypyc*")]
    if native.MANIFEST.exists():
        removed.append(native.MANIFEST)
    for path in removed:
        path.unlink()
    return removed


def build() -> None:
    paths = [str(native.source_path(name).relative_to(REPO)) for name in native.MODULES]
    with tempfile.TemporaryDirectory(prefix="cds-native-") as work:
        script = (
            "import sys\n"
            "from setuptools import setup\n"
            "from mypyc.build import mypycify\n"
            f"modules = mypycify({paths!r}, group_name={GROUP!r}, target_dir={work + '/c'!r})\n"
            "setup(name='cds-native', packages=[], ext_modules=modules, script_args=['build_ext', '--inplace',"
            f" '--build-temp', {work + '/temp'!r}, '--build-lib', {work + '/lib'!r}])\n"
        )
        # Compiled in a child: setuptools and mypyc print freely, and a failure leaves this process able to say so.
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, env={**os.environ}
        )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        clean()
        raise SystemExit("native build failed; the service runs from source")
    native.MANIFEST.write_text(json.dumps({"sources": sources()}, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="build even if the build matches the sources")
    parser.add_argument("--clean", action="store_true", help="remove the build and its manifest")
    args = parser.parse_args()
    if args.clean:
        print(f"removed {len(clean())} file(s): every module runs from source")
        return 0
    if not args.force and up_to_date():
        print(f"native build up to date ({len(native.MODULES)} modules)")
        return 0
    missing = toolchain_missing()
    if missing:
        clean()
        print(f"native build skipped: {missing}; the service runs every module from source")
        return 0
    clean()
    build()
    print(f"native build done: {len(native.MODULES)} modules compiled with mypyc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
