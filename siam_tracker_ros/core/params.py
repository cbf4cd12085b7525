"""Parameter specs: one row per parameter (name, default, range, description, whether a
change needs a reload) and the checks every table shares.

The tables themselves live with their owners: the trackers' and the target
supervisor's in core/tracking/params.py, the node's own in ros/params.py. The
same rows drive the checks of model YAMLs (an unknown key is an error), the ROS
parameter descriptors (range, description, read-only) and runtime changes.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Param:
    name: str
    default: Any                      # a value, or {owner kind: value} (tracker types)
    description: str                  # what it does, in a sentence or two
    range: Optional[Tuple[float, float]] = None    # inclusive; every numeric parameter has one
    choices: Optional[Tuple[str, ...]] = None      # strings: the accepted values
    pattern: Optional[str] = None     # strings: a regular expression the whole value must match
    reload: bool = False              # a change needs a model reload (ros/params.py)
    read_only: bool = False           # (node) read at start only
    kind: Optional[type] = None       # bool, int, float, str or list; else the default's type
    optional: bool = False            # None is accepted (meaning: in the description)

    @property
    def value_type(self) -> type:
        if self.kind is not None:
            return self.kind
        default = self.default
        if isinstance(default, Mapping):
            default = next((v for v in default.values() if v is not None), None)
        return type(default)

    def default_for(self, owner: Optional[str] = None) -> Any:
        if isinstance(self.default, Mapping):
            return self.default[owner]
        return self.default

    def applies_to(self, owner: str) -> bool:
        return not isinstance(self.default, Mapping) or owner in self.default

    def check(self, value: Any) -> Any:
        """The value in this parameter's type; ValueError naming the parameter otherwise.
        Numeric strings and bool words ("true" / "false") are converted (command lines)."""
        kind = self.value_type
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name} must be set (got None)")
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"{self.name} must be true or false, got {value!r}")
                return value.lower() in ("true", "1")
            return bool(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.name} must be a string, got {value!r}")
            if self.choices and value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r:.80}")
            if self.pattern and not re.fullmatch(self.pattern, value):
                raise ValueError(f"{self.name} must match {self.pattern}, got {value!r:.80}")
            return value
        if kind is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"{self.name} must be a non-empty list, got {value!r}")
            for v in value:
                self._check_number(v, float)
            return list(value)
        return self._check_number(value, kind)

    def _check_number(self, value: Any, kind: type):
        try:
            if isinstance(value, bool):
                raise TypeError
            v = kind(value)
            if kind is int and float(value) != v:
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be {kind.__name__}, got {value!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{self.name} must be finite, got {value!r}")
        if self.range is not None:
            lo, hi = self.range
            if v < lo or v > hi:
                raise ValueError(f"{self.name}={v} out of range [{lo}, {hi}]")
        return v


def table(rows: Iterable[Param]) -> Dict[str, Param]:
    """Rows by name (a repeated name is a mistake in the table)."""
    out: Dict[str, Param] = {}
    for p in rows:
        if p.name in out:
            raise ValueError(f"parameter {p.name!r} listed twice")
        out[p.name] = p
    return out


def check_values(rows: Mapping[str, Param], values: Mapping[str, Any], what: str) -> Dict[str, Any]:
    """Checked, typed copy of `values`; an unknown key is an error that lists the known ones."""
    out = {}
    for key, value in values.items():
        if key not in rows:
            raise ValueError(f"unknown {what} parameter {key!r}; known: {', '.join(sorted(rows))}")
        out[key] = rows[key].check(value)
    return out
