"""Hypothesis strategies for hostile values, and for mutating a valid platform body.

A body keeps the platform's valid shape (so it reaches the parsing behind the signature
check) with one to three of its fields replaced by something a platform should never
send: unicode edge cases (NUL, lone surrogates, bidi controls, combining marks), huge
and tiny numbers, deep nesting, long ids, and values of the wrong type.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from fuzz.hub import DEEP

EDGE_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\ud83d",
    "\u202e\u2066",  # bidi overrides
    "\ufeff\u200b",  # BOM, zero-width space
    "e\u0301" * 50,  # combining marks
    "𝔸" * 10,  # astral plane
    "",
    " ",
    "\n\r\t",
    "%00",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
]
EDGE_NUMBERS: list[Any] = [
    10**300,
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    1e308,
    -1e-308,
    0.5,
    float("inf"),
    float("nan"),
]

# Every code point, surrogates included (hypothesis leaves them out by default).
any_char = st.characters(codec=None, exclude_categories=())
hostile_text = st.one_of(
    st.sampled_from(EDGE_TEXT),
    st.sampled_from([("я", 5000), ("9", 300), ("x", 128), ("x", 129)]).map(lambda c: c[0] * c[1]),
    st.text(any_char, max_size=50),
    st.builds(lambda s, n: s * n, st.text(any_char, min_size=1, max_size=3), st.integers(1, 3000)),
)
hostile_number = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
hostile_scalar = st.one_of(hostile_text, hostile_number, st.booleans(), st.none())
hostile_value = st.one_of(
    hostile_scalar,
    st.lists(hostile_scalar, max_size=4),
    st.dictionaries(hostile_text, hostile_scalar, max_size=3),
    st.just(DEEP),  # spliced in as deep nesting by ``dumps``
)


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` a mutation may land (containers too, not the root)."""
    found: list[tuple[Any, ...]] = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(leaf_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(leaf_paths(item, (*path, index)))
    return found


def mutated(body: dict[str, Any], data: st.DataObject) -> tuple[dict[str, Any], int]:
    """``body`` with a few fields replaced; the nesting depth to splice for ``DEEP``."""
    body = copy.deepcopy(body)
    paths = leaf_paths(body)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths), label="path")
        parent: Any = body
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = data.draw(hostile_value, label="value")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent of this path
    depth = data.draw(st.sampled_from([40, 5_000, 100_000]), label="depth")
    return body, depth


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values of an OpenAPI (JSON Schema) fragment as FastAPI writes them: objects
    with properties, strings with lengths, bounded numbers, ``anyOf``, arrays, enums."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s) for s in schema[key]])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
    if kind == "string":
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 300)
        )
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=4)
    return st.one_of(st.none(), st.integers(), st.text(max_size=20))
