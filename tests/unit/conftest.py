"""Fixtures for the unit tests of the pure modules: the shipped value sets, loaded once."""

from __future__ import annotations

import pytest

from cds_service.terminology import ValueSets, load_valuesets


@pytest.fixture(scope="session")
def vs() -> ValueSets:
    return load_valuesets()
