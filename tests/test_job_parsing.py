"""The payload parser's fast path (orjson) never accepts what the exact one refuses, and reads
what it accepts exactly as the exact one does (duplicate keys, big integers, any spacing)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pool.job import InvalidJob, _parsed_exactly, _parsed_quickly, decode_job

_keys = st.sampled_from(["a", "b", "ebookId", 'q":', "x y", "\u00e9", "k"]) | st.text(max_size=4)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(['":', '" :', "\\", '"'])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.lists(st.tuples(_keys, inner), max_size=4)
    ),  # pairs: keys may repeat
    max_leaves=20,
)
_spaces = st.sampled_from(["", " ", "\n", "\t ", "  "])


@st.composite
def _documents(draw: st.DrawFn) -> str:
    """JSON text of an object whose members are pairs (so a key can appear twice), with
    random spacing around every colon and comma."""

    def render(value: Any) -> str:
        if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
            members = [
                f"{json.dumps(k)}{draw(_spaces)}:{draw(_spaces)}{render(v)}" for k, v in value
            ]
            return "{" + f"{draw(_spaces)},".join(members) + "}"
        if isinstance(value, list):
            return "[" + ",".join(render(v) for v in value) + "]"
        return json.dumps(value)

    pairs = draw(st.lists(st.tuples(_keys, _values), max_size=6))
    return render(pairs) if pairs else "{}"


def _exact(text: str) -> Any:
    try:
        return ("ok", _parsed_exactly(text))
    except InvalidJob as exc:
        return ("invalid", str(exc))


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_the_fast_path_agrees_with_the_exact_parser(text: str) -> None:
    data = text.encode()
    try:
        quick = _parsed_quickly(data)
    except InvalidJob as exc:
        assert _exact(text) == ("invalid", str(exc))
        return
    if quick is not None:
        assert _exact(text) == ("ok", quick)
        assert json.dumps(quick, sort_keys=True) == json.dumps(_exact(text)[1], sort_keys=True)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ('{"a": 1, "a": 2}', "key 'a' twice"),
        ('{"a" :1, "a":2, "x":"y"}', "key 'a' twice"),  # spacing cannot hide a duplicate
        ('{"m": {"k": 1, "k" : 2}}', "key 'k' twice"),
        ('{"ebookId": "e", "ebookId": "f"}', "key 'ebookId' twice"),
    ],
)
def test_duplicate_keys_are_refused_however_they_are_spaced(payload: str, why: str) -> None:
    assert _parsed_quickly(payload.encode()) is None
    with pytest.raises(InvalidJob, match=why):
        decode_job(payload, max_bytes=65_536)


def test_an_integer_over_64_bits_in_metadata_is_kept_exactly() -> None:
    big = 2**70 + 1
    payload = json.dumps(
        {"ebookId": "e", "pageIndex": 0, "totalPages": 1, "title": "T", "metadata": {"n": big}}
    )
    assert decode_job(payload, max_bytes=65_536).metadata == {"n": big}
