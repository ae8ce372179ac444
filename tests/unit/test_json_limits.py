"""The JSON limit check walks without building paths (it runs on every call); only a refused body pays
for the path in the message. Both walks must agree on every input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.errors import InvalidRequest
from cds_service.json_limits import check_shape
from cds_service.settings import Settings

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=30,
)


def _reference(value: Any, depth_limit: int, items_limit: int, string_limit: int) -> bool:
    """The limits as the README states them: depth counts the body as 1, every value is checked."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > depth_limit:
            return False
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            if len(node) > items_limit:
                return False
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str) and len(node) > string_limit:
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(JSON, st.integers(2, 6), st.integers(2, 6), st.integers(1, 5))
def test_the_fast_walk_refuses_exactly_what_the_limits_refuse(value: Any, depth: int, items: int, length: int) -> None:
    limits = Settings.model_construct(max_json_depth=depth, max_list_items=items, max_string_length=length)
    if _reference(value, depth, items, length):
        check_shape(value, limits)
    else:
        with pytest.raises(InvalidRequest):
            check_shape(value, limits)


def test_a_refusal_names_where_the_body_went_wrong() -> None:
    limits = Settings.model_construct(max_json_depth=64, max_list_items=10, max_string_length=5)
    with pytest.raises(InvalidRequest, match=r"body\.context\.draftOrders\.entry\[1\]: a string of 6 characters"):
        check_shape({"context": {"draftOrders": {"entry": ["ok", "toolong"[:6]]}}}, limits)
