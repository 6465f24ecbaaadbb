"""Protocol-buffer text format, as ScaNN writes its configs: parse to nested dicts and
render back. Untyped (no .proto schema): a field given more than once becomes a list,
numbers become int or float (nan and inf included), `true`/`false` bool, other bare
words (enum values) str, and quoted strings str.

    parse('num_neighbors: 10 distance_measure { distance_measure: "DotProductDistance" }')
    == {"num_neighbors": 10, "distance_measure": {"distance_measure": "DotProductDistance"}}
"""
from __future__ import annotations

import math
import re

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}:<>;,\[\]])
  | (?P<word>[A-Za-z0-9_.+\-]+)
""", re.VERBOSE)
_CLOSING = {"{": "}", "<": ">"}
_MAX_DEPTH = 64


def _tokens(text: str):
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"config text: unexpected character {text[pos]!r} at offset {pos}")
        pos = match.end()
        if match.lastgroup != "space":
            yield match.lastgroup, match.group()


def _scalar(kind: str, token: str):
    if kind == "string":
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    lowered = token.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("nan", "-nan", "inf", "-inf", "infinity", "-infinity"):
        return float(lowered.replace("infinity", "inf"))
    try:
        return int(token, 0)
    except ValueError:
        pass
    try:
        return float(token.rstrip("fF") if not lowered.startswith("0x") else token)
    except ValueError:
        return token  # an enum value


def _add(fields: dict, name: str, value) -> None:
    if name not in fields:
        fields[name] = value
    elif isinstance(fields[name], list):
        fields[name].append(value)
    else:
        fields[name] = [fields[name], value]


def parse(text: str) -> dict:
    """The fields of a text-format message."""
    if not isinstance(text, str):
        raise TypeError(f"a ScaNN config is text, got {type(text).__name__}")
    tokens = list(_tokens(text))
    pos = 0

    def message(closing: str | None, depth: int) -> dict:
        nonlocal pos
        if depth > _MAX_DEPTH:
            raise ValueError("config text: messages nested too deeply")
        fields: dict = {}
        while True:
            if pos == len(tokens):
                if closing is not None:
                    raise ValueError(f"config text: missing {closing!r}")
                return fields
            kind, token = tokens[pos]
            if token == closing:
                pos += 1
                return fields
            if kind != "word":
                raise ValueError(f"config text: expected a field name, got {token!r}")
            name = token
            pos += 1
            if pos < len(tokens) and tokens[pos][1] == ":":
                pos += 1
            if pos == len(tokens):
                raise ValueError(f"config text: field {name!r} has no value")
            kind, token = tokens[pos]
            pos += 1
            if token in _CLOSING:
                _add(fields, name, message(_CLOSING[token], depth + 1))
            elif kind in ("word", "string"):
                _add(fields, name, _scalar(kind, token))
            else:
                raise ValueError(f"config text: field {name!r} has no value (found {token!r})")
            if pos < len(tokens) and tokens[pos][1] in (";", ","):
                pos += 1

    return message(None, 0)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        return value  # an enum value
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {value!r} into a config")


def render(fields: dict, indent: int = 0) -> str:
    """Text format of fields (parse(render(f)) == f for what parse returns; None skips a field)."""
    lines = []
    pad = "  " * indent
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, dict):
                lines.append(f"{pad}{name} {{\n{render(item, indent + 1)}{pad}}}\n")
            else:
                lines.append(f"{pad}{name}: {_value(item)}\n")
    return "".join(lines)
