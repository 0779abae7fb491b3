"""Type checks of what a run log holds, so that a hand-edited or damaged line is refused by the reader
(with its line number and problem) instead of failing later in a plot or a report.

:func:`field_problem` walks a typed schema object (a :class:`~ibhooks.schema.Record` read back with
``from_dict``) against the annotations of its dataclasses; :func:`header_problem` checks the header.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from typing import Any, Dict, Mapping, Optional, Tuple

#: Largest magnitude accepted for a number (steps, bits, seconds): exact in a float and plottable.
MAX_ABS = float(2**53)
#: Deepest nesting accepted inside free-form fields (``info``, ``params``, ``diagnostics``).
MAX_DEPTH = 32

_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _depth_problem(value: Any, where: str) -> Optional[str]:
    """Nesting deeper than MAX_DEPTH (iterative: never a RecursionError)."""
    stack = [(value, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{where}: nested more than {MAX_DEPTH} levels deep"
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, depth + 1) for v in obj)
    return None


def _number_problem(value: Any, where: str, integer: bool) -> Optional[str]:
    kind = "an integer" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        return f"{where}: {_short(value)} is not {kind}"
    if isinstance(value, float) and math.isnan(value):
        return None  # a non-finite estimate is stored as null and read back as nan
    if not math.isfinite(value):
        return f"{where}: {_short(value)} is not a finite number"
    if not abs(value) <= MAX_ABS:
        return f"{where}: {_short(value)} is out of range (more than 2**53 in magnitude)"
    return None


def field_problem(value: Any, tp: Any, where: str) -> Optional[str]:
    """The first place where ``value`` does not match the annotation ``tp``, as ``"path: problem"``;
    ``None`` when it matches."""
    if tp is Any:
        return _depth_problem(value, where)
    if tp is bool:
        return None if isinstance(value, bool) else f"{where}: {_short(value)} is not true/false"
    if tp is int or tp is float:
        return _number_problem(value, where, integer=tp is int)
    if tp is str:
        return None if isinstance(value, str) else f"{where}: {_short(value)} is not a string"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return None if isinstance(value, tp) else f"{where}: {_short(value)} is not a {tp.__name__}"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            return f"{where}: {_short(value)} is not a {tp.__name__}"
        hints = _hints(tp)
        for f in dataclasses.fields(tp):
            problem = field_problem(getattr(value, f.name), hints[f.name], f"{where}.{f.name}")
            if problem:
                return problem
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        problems = [field_problem(value, a, where) for a in args if a is not type(None)]
        return None if any(p is None for p in problems) else problems[0]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return f"{where}: {_short(value)} is not a list"
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return f"{where}: {_short(value)} does not have {len(args)} entries"
            items = list(zip(value, args))
        else:
            items = [(v, args[0] if args else Any) for v in value]
        for i, (v, a) in enumerate(items):
            problem = field_problem(v, a, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            return f"{where}: {_short(value)} is not a mapping"
        key_t, val_t = args if args else (str, Any)
        for k, v in value.items():
            problem = field_problem(k, key_t, f"{where} key") or field_problem(v, val_t, f"{where}.{k}")
            if problem:
                return problem
        return None
    return None  # an annotation this checker does not know: accept


#: Header fields downstream code reads, and the JSON types they must have.
HEADER_FIELDS: Dict[str, Tuple[type, ...]] = {
    "config": (dict,),
    "coverage": (list,),
    "chains": (list,),
    "run_name": (str,),
    "versions": (dict,),
    "fingerprint": (str,),
    "created": (str,),
}


def header_field_problem(key: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot be the header field ``key`` (``None`` if it can)."""
    if value is None or key not in HEADER_FIELDS:
        return _depth_problem(value, key)
    if not isinstance(value, HEADER_FIELDS[key]):
        return f"{key}: {_short(value)} is not a {HEADER_FIELDS[key][0].__name__}"
    if key in ("coverage", "chains") and not all(isinstance(v, dict) for v in value):
        return f"{key}: every entry must be an object"
    return _depth_problem(value, key)


def header_problem(header: Mapping[str, Any], *, format_name: str, newest: int) -> Optional[str]:
    """Why ``header`` (the first line, parsed) is not a readable run-log header."""
    if header.get("type") != "header" or header.get("format") != format_name:
        return f"the first line is not an '{format_name}' header"
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version:
        return f"the header's format version {_short(version)} is not a positive integer"
    if version > newest:
        return (
            f"run-log format version {version} is newer than this ibhooks reads ({newest}); upgrade ibhooks"
        )
    for key, value in header.items():
        problem = header_field_problem(key, value)
        if problem:
            return f"the header's {problem}"
    return None


__all__ = ["field_problem", "header_problem", "header_field_problem", "MAX_ABS", "MAX_DEPTH"]
