"""``yamlload.safe_load`` is PyYAML's safe loading, on libyaml's parser where PyYAML has it."""

from __future__ import annotations

import pytest
import yaml

from cds_service import yamlload


def test_it_uses_the_c_parser_when_pyyaml_has_libyaml() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert yamlload._SAFE_LOADER is yaml.CSafeLoader


def test_it_refuses_python_object_tags() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        yamlload.safe_load("!!python/object/apply:os.system ['true']")


def test_it_reads_what_safe_load_reads() -> None:
    text = "a: 1\nb: [x, 'y', 2.5, null, true]\nc: {d: 2026-12-07}\n"
    assert yamlload.safe_load(text) == yaml.safe_load(text)
    assert yamlload.safe_load(text.encode()) == yaml.safe_load(text)


def test_bad_yaml_is_a_yaml_error() -> None:
    with pytest.raises(yaml.YAMLError):
        yamlload.safe_load("a: [1, 2")
