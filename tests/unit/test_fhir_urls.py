"""The FHIR gateway's URL shortcuts give exactly what httpx's own operations give: ``resolve`` against
``URL.join``, ``without_query`` against ``copy_with(query=None)``; and the app makes one FHIR client per query
of the largest prefetch."""

from __future__ import annotations

from functools import cache

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.app import fhir_client_count
from cds_service.fhir.client import FhirGateway, without_query
from cds_service.knowledge import Knowledge
from cds_service.prefetch.templates import render, tokens_in

BASES = ["https://ehr.example.org/fhir/r4", "http://127.0.0.1:8080/fhir/", "https://h.example/a%20b/fhir"]
# Characters that matter to URL resolution: separators, dots, percent signs, spaces, non-ASCII.
URL_TEXT = st.text(alphabet="aZ09/?#:.%&=|,_- ~é", max_size=24)


@cache  # a client loads the CA bundle: one per base, not one per example
def _gateway(base: str) -> FhirGateway:
    return FhirGateway(httpx.AsyncClient(), base, None, timeout=1.0, max_pages=2)


def _same(gateway: FhirGateway, relative: str) -> None:
    try:
        expected: httpx.URL | type[Exception] = gateway._base.join(relative)
    except httpx.InvalidURL:
        expected = httpx.InvalidURL
    if expected is httpx.InvalidURL:
        with pytest.raises(httpx.InvalidURL):
            gateway.resolve(relative)
    else:
        assert gateway.resolve(relative) == expected
        assert str(gateway.resolve(relative)) == str(expected)


@pytest.mark.parametrize("base", BASES)
def test_every_prefetch_query_resolves_as_join_does(knowledge: Knowledge, base: str) -> None:
    gateway = _gateway(base)
    awkward = ["p-1", "a/../b", "x y", "é", "a?b#c", "..", "%2F", "a:b", ""]
    seen = 0
    for service in knowledge.registry.values():
        for spec in service.prefetch:
            for value in awkward:
                relative = render(spec.template, dict.fromkeys(tokens_in(spec.template), value))
                if relative is not None:
                    _same(gateway, relative)
                    seen += 1
    assert seen >= 19 * len(awkward)


@pytest.mark.parametrize(
    "relative",
    ["Patient//1", "a:b", "Patient/1?", "Patient/1#x", "/Patient/1", "../Patient", "Patient/./1", "?x=1", ""],
)
def test_references_that_are_not_plain_go_through_join(relative: str) -> None:
    _same(_gateway(BASES[0]), relative)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BASES), st.from_regex(r"[A-Za-z][A-Za-z0-9]*", fullmatch=True), URL_TEXT)
def test_resolve_agrees_with_join(base: str, head: str, tail: str) -> None:
    _same(_gateway(base), head + tail)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BASES), URL_TEXT, URL_TEXT)
def test_without_query_agrees_with_copy_with(base: str, path: str, query: str) -> None:
    try:
        url = httpx.URL(base + "/" + path + "?" + query)
    except httpx.InvalidURL:
        return
    assert without_query(url) == str(url.copy_with(query=None))


def test_one_fhir_client_per_query_of_the_largest_prefetch(knowledge: Knowledge) -> None:
    largest = max(len(service.prefetch) for service in knowledge.registry.values())
    assert largest == 19
    assert fhir_client_count(knowledge) == largest
