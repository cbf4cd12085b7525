"""Argument grammar shared by the siam-* tools: one name per flag meaning.

    --threads   CPU threads (torch / OpenCV / onnxruntime)    (was --num-threads in siam-demo)
    --out       where the results go: a folder, or siam-track's box file  (was -o/--output in siam-track)
    --box       x,y,w,h (cli/boxes.py)

A former name keeps working for one release through `deprecated_alias`: it sets the same
destination and prints one warning line naming the new flag.
"""
from __future__ import annotations

import argparse
import sys


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated (removed in the next release): use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_alias(parser: argparse.ArgumentParser, *old: str, new: str, dest: str, **kwargs) -> None:
    """Accept the flag(s) `old` as `new` (same dest and type), hidden from --help, with a warning."""
    parser.add_argument(*old, dest=dest, action=_DeprecatedAlias, new=new, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)
