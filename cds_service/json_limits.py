"""Input limits on a request's JSON: nesting depth, array length and string length.

Checked on every body before any model sees it, so the walk is kept lean (no paths); only a refused body
pays for finding where it went wrong. Plain standard-library code: it is one of the compiled modules.
"""

from __future__ import annotations

from typing import Any, Protocol

from cds_service.errors import InvalidRequest


class Limits(Protocol):
    @property
    def max_json_depth(self) -> int: ...
    @property
    def max_list_items(self) -> int: ...
    @property
    def max_string_length(self) -> int: ...


def check_shape(value: Any, settings: Limits) -> None:
    """Refuse JSON nested too deep, arrays too long or strings too long, before any model sees it."""
    if _within_limits(value, settings.max_json_depth, settings.max_list_items, settings.max_string_length):
        return
    # The walk above keeps no paths, for speed; only a refused body pays for finding where it went wrong.
    _explain(value, settings)


def _within_limits(value: Any, max_depth: int, max_items: int, max_string: int) -> bool:
    """The same limits as ``_explain``: a value at depth ``d`` is nested ``d`` levels deep (the body is 1).

    Level by level: the containers of one depth in a list, so no (node, depth) pair is built per container.
    ``isinstance`` narrows each container to ``dict`` or ``list``, which the compiled build iterates natively."""
    if not isinstance(value, (dict, list)):
        return max_depth >= 1 and (not isinstance(value, str) or len(value) <= max_string)
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            return False
        deeper: list[Any] = []
        last = depth == max_depth  # a value inside a container at this depth would be too deep
        for node in level:
            if last and node:
                return False
            if isinstance(node, dict):
                if not _values_within(node, deeper, max_string):
                    return False
            elif len(node) > max_items or not _items_within(node, deeper, max_string):
                return False
        level = deeper
        depth += 1
    return True


def _values_within(node: dict[str, Any], deeper: list[Any], max_string: int) -> bool:
    """Strings of ``node`` within ``max_string``; its containers go to ``deeper``."""
    for item in node.values():
        if isinstance(item, str):
            if len(item) > max_string:
                return False
        elif isinstance(item, (dict, list)):
            deeper.append(item)
    return True


def _items_within(node: list[Any], deeper: list[Any], max_string: int) -> bool:
    """``_values_within`` for a list (the same loop over a list, which the compiled build indexes natively)."""
    for item in node:
        if isinstance(item, str):
            if len(item) > max_string:
                return False
        elif isinstance(item, (dict, list)):
            deeper.append(item)
    return True


def _explain(value: Any, settings: Limits) -> None:
    stack: list[tuple[Any, int, str]] = [(value, 1, "body")]
    while stack:
        node, depth, where = stack.pop()
        if depth > settings.max_json_depth:
            raise InvalidRequest(f"{where}: JSON nested deeper than {settings.max_json_depth} levels")
        if isinstance(node, dict):
            stack.extend((item, depth + 1, f"{where}.{key}") for key, item in node.items())
        elif isinstance(node, list):
            if len(node) > settings.max_list_items:
                raise InvalidRequest(f"{where}: {len(node)} items; at most {settings.max_list_items} are accepted")
            stack.extend((item, depth + 1, f"{where}[{index}]") for index, item in enumerate(node))
        elif isinstance(node, str) and len(node) > settings.max_string_length:
            raise InvalidRequest(f"{where}: a string of {len(node)} characters exceeds {settings.max_string_length}")
    raise InvalidRequest("request body exceeds the input limits")
