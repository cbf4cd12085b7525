"""The one box grammar of the command-line tools: `x,y,w,h`.

Commas, spaces (or tabs) or both separate the four numbers, so `10,20,30,40`,
`"10 20 30 40"` and `"10, 20, 30, 40"` are the same box, as are the first lines of
most ground-truth files. x and y may be negative (a target partly outside the first
frame); w and h must be positive; nothing may be NaN or infinite. Whether the box
overlaps the image is checked later, against the image (core.geometry.validate_box).
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Tuple

from ..ros.logging_utils import quote_untrusted

_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_NAMES = ("x", "y", "w", "h")


def parse_box(text: str) -> Tuple[float, float, float, float]:
    """`x,y,w,h` (commas and / or whitespace) -> (x, y, w, h) floats.

    Raises ValueError naming what is wrong: the count, an empty field (`1,,2,3`), a
    word that is not a number, NaN / infinity, or a width or height <= 0.
    """
    quoted = quote_untrusted(text, 40)
    stripped = str(text).strip()
    fields = _SEPARATOR.split(stripped) if stripped else []
    if len(fields) != 4:
        raise ValueError(f"a box is 4 numbers x,y,w,h; got {len(fields)} in {quoted}")
    values = []
    for name, field in zip(_NAMES, fields):
        if not field:
            raise ValueError(f"box {quoted}: {name} is empty")
        try:
            value = float(field)
        except ValueError:
            raise ValueError(f"box {quoted}: {name} = {quote_untrusted(field, 20)} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"box {quoted}: {name} must be finite, got {quote_untrusted(field, 20)}")
        values.append(value)
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise ValueError(f"box {quoted}: width and height must be positive, got w={w:g} h={h:g}")
    return x, y, w, h


def box_argument(text: str) -> Tuple[float, float, float, float]:
    """`parse_box` as an argparse `type=`: argparse prints an ArgumentTypeError's text
    (a plain ValueError would become 'invalid box_argument value')."""
    try:
        return parse_box(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class BoxAction(argparse.Action):
    """`--box` taking one word (`10,20,30,40`) or four (`10 20 30 40`): use with
    nargs='+' where no positional argument follows the option (it would be swallowed)."""

    def __call__(self, parser, namespace, values, option_string=None):
        words = [values] if isinstance(values, str) else list(values)
        try:
            box = parse_box(" ".join(words))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, box)
