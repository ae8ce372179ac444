"""YAML read with libyaml's C parser where PyYAML has it (its PyPI wheels do), else with PyYAML's own.

The card catalogue is 138 small YAML files, read at every start of the app: through the pure-Python parser
that took about 0.3 s of a 0.33 s ``create_app`` (on a slow host), and the test suite starts an app for most
of its tests. Both loaders are the safe one: the same constructor and tag resolver, only the parser differs.
"""

from __future__ import annotations

from typing import Any

import yaml

_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(data: str | bytes) -> Any:
    """``yaml.safe_load``, faster; raises ``yaml.YAMLError`` as it does."""
    return yaml.load(data, Loader=_SAFE_LOADER)  # a safe loader: CSafeLoader or SafeLoader
