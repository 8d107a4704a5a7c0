"""JSON columns are read with msgspec (`audit.db.json_loads`), falling back to the standard parser:
both must read every value the standard library writes exactly alike."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.db import json_loads

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5)
)


@settings(max_examples=500, deadline=None)
@given(value=VALUES, ascii_only=st.booleans())
def test_every_value_the_standard_library_writes_reads_back_alike(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)  # infinities and lone surrogates included
    assert json.dumps(json_loads(text)) == json.dumps(json.loads(text))
    assert json.dumps(json_loads(text.encode("utf-8", "surrogatepass"))) == json.dumps(json.loads(text))


def test_what_msgspec_refuses_is_read_by_the_standard_parser() -> None:
    for text in ("[NaN, Infinity, -Infinity]", "[1e400]", '"\\ud800"', '{"a": 1, "a": 2}'):
        assert json.dumps(json_loads(text)) == json.dumps(json.loads(text))
