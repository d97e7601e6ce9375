"""Input PostgreSQL cannot store, found before it gets there: NUL characters, lone surrogates, JSON nested
too deeply to walk. One place says what that is; the API (middleware and body parser), the usage ingest, the
dataset import readers and the upload checks ask it, so each answers with a 4xx naming the field or row.

    problem = text_problem("a\\x00b")             # "contains a NUL character (\\u0000)"
    found = find_bad_text({"events": [...]})     # ("events[3].model", "contains a NUL character …") or None
    data = loads_json(request.body)              # InputRejected (400/422 with the field) instead of a 500
"""

from __future__ import annotations

import json
import re

from django.core.exceptions import ValidationError

from apps.core.api_errors import error_body

MAX_JSON_DEPTH = 64
_BAD = re.compile("[\x00\ud800-\udfff]")


class InputRejected(Exception):
    """Input the portal refuses before it reaches the database: `field` (dotted path) and a message."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def body(self) -> dict:
        """The API's one error body (apps/core/api_errors.py)."""
        if self.status == 422:
            return error_body("Invalid input.", [{"field": self.field, "message": self.message}])
        return error_body(self.message)


def text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse this text, or None."""
    match = _BAD.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return f"contains a lone surrogate (\\u{ord(match.group()):04x}), which is not valid Unicode"


def find_bad_text(value, path: str = "", *, max_depth: int | None = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(path, problem) of the first unstorable string (key or value) in a JSON-like value, or None.

    Walks without recursion, so a value nested thousands of levels deep is reported, not a RecursionError.
    A flat object (a usage event, a dataset row) takes the fast path: one regex search per key and string.
    """
    if not isinstance(value, dict):
        return _walk(value, path, 0, max_depth)
    search = _BAD.search
    nested = []
    for key, child in value.items():
        if isinstance(key, str) and search(key):
            return _child(path, repr(key)[1:-1]), f"has a key that {text_problem(key)}"
        if isinstance(child, str):
            if search(child):
                return _child(path, key), text_problem(child)
        elif isinstance(child, dict | list | tuple):
            nested.append((key, child))
    if nested and max_depth is not None and max_depth < 1:
        return path or "value", f"is nested deeper than {max_depth} levels"
    for key, child in nested:
        found = _walk(child, _child(path, key), 1, max_depth)
        if found:
            return found
    return None


def _child(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(value, path: str, depth: int, max_depth: int | None) -> tuple[str, str] | None:
    search = _BAD.search
    stack = [(value, None, path, depth)]  # (item, parent entry, key, depth); paths are spelled out when found
    while stack:
        entry = stack.pop()
        item, _, _, level = entry
        if isinstance(item, str):
            if search(item):
                return _path(entry) or "value", text_problem(item)
        elif isinstance(item, dict | list | tuple):
            if max_depth is not None and level >= max_depth:
                return _path(entry) or "value", f"is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and search(key):
                        return _path((None, entry, repr(key)[1:-1], 0)), f"has a key that {text_problem(key)}"
                    stack.append((child, entry, key, level + 1))
            else:
                stack.extend((child, entry, i, level + 1) for i, child in enumerate(item))
    return None


def _path(entry) -> str:
    keys = []
    while entry[1] is not None:
        keys.append(entry[2])
        entry = entry[1]
    path = entry[2]
    for key in reversed(keys):
        path = _child(path, key)
    return path


def loads_json(raw, *, check_text: bool = True, what: str = "The body"):
    """Parse JSON; InputRejected (400) when unreadable or too deep to parse, (422, naming the field) when it
    holds unstorable text. `check_text=False` leaves the per-item checks to the caller (batches reject rows)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise InputRejected(f"{what} is nested too deeply to read (at most {MAX_JSON_DEPTH} levels).", status=400)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputRejected(f"{what} is not valid JSON: {exc}", status=400)
    if check_text:
        found = find_bad_text(data)
        if found:
            raise InputRejected(found[1], field=found[0])
    return data


def reject_bad_params(params) -> None:
    """InputRejected for the first parameter (query, form field or uploaded file's name) holding unstorable
    text."""
    for key, values in params.lists():
        if problem := text_problem(key):
            raise InputRejected(f"a parameter name {problem}", field=key)
        for value in values:
            text = value if isinstance(value, str) else getattr(value, "name", None) or ""
            if problem := text_problem(text):
                raise InputRejected(f"{key!r} {problem}", field=key)


def form_json(raw: str):
    """A form field's JSON text, parsed; a ValidationError (shown next to the field) when it is not JSON, is
    nested too deeply, or holds text PostgreSQL cannot store."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).")
    except RecursionError:
        raise ValidationError(f"Not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels.")
    found = find_bad_text(value)
    if found:
        raise ValidationError(f"{found[0]} {found[1]}." if found[0] != "value" else f"The JSON {found[1]}.")
    return value
