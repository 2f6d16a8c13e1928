"""Malformed variants of a valid trade frame, for tests that feed the ingestor's and silver's parsers bad input."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

MIB = 1 << 20
NESTED = "[" * 5_000 + "]" * 5_000  # deeper than JSON parsers recurse by default
# What a field's value is replaced by: wrong types, non-numbers, extreme numbers, huge and nested values.
REPLACEMENTS: list[tuple[str, str]] = [
    ("null", "null"),
    ("empty string", '""'),
    ("text", '"abc"'),
    ("object", '{"x":1}'),
    ("array", "[1,2]"),
    ("boolean", "true"),
    ("negative", "-1"),
    ("zero", "0"),
    ("NaN string", '"NaN"'),
    ("infinity string", '"Infinity"'),
    ("overflowing float", "1e400"),
    ("huge integer", "1" + "0" * 40),
    ("huge decimal string", '"1' + "0" * 40 + '.5"'),
    ("nested garbage", NESTED),
]
BIG = ("1 MiB string", json.dumps("9" * MIB))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of every leaf of a JSON value."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))
    else:
        yield path


def _with(message: Any, path: tuple[Any, ...], raw: str | None) -> str:
    """``message`` as text with the leaf at ``path`` replaced by the JSON text ``raw``, or removed if None."""
    marker = "\x00replaced\x00"
    copy = json.loads(json.dumps(message))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if raw is None:
        del parent[path[-1]]
        return json.dumps(copy, separators=(",", ":"))
    parent[path[-1]] = marker
    return json.dumps(copy, separators=(",", ":")).replace(json.dumps(marker), raw)


def variants(frame: str, *, seed: int = 0) -> Iterator[tuple[str, str]]:
    """(what was done, the malformed frame text) for one valid JSON trade frame: at least 50 of them."""
    message = json.loads(frame)
    leaves = list(_paths(message))
    for path in leaves:
        where = "/".join(map(str, path))
        yield f"{where} missing", _with(message, path, None)
        for name, raw in REPLACEMENTS:
            yield f"{where} {name}", _with(message, path, raw)
    for path in leaves[:2]:
        yield f"{'/'.join(map(str, path))} {BIG[0]}", _with(message, path, BIG[1])
    rng = random.Random(seed)
    for cut in sorted(rng.sample(range(1, len(frame)), min(10, len(frame) - 1))):
        yield f"truncated at {cut}", frame[:cut]
    yield "not JSON", "trade!"
    yield "empty", ""
    yield "a JSON string", json.dumps(frame)
    yield "a JSON array", f"[{frame}]"
    yield "nested garbage", NESTED
    yield "latin-1 garbage", bytes(rng.randrange(128, 256) for _ in range(64)).decode("latin-1")
