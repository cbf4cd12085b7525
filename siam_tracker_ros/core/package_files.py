"""Where this package's data files are: config/ (node params, model YAMLs), launch/, msg/.

The package runs in three layouts, and each finds its own files:
- a source checkout (`pip install -e .`, `python -m ...`): the folder above the package
  holds package.xml and config/, so edits to them count at once;
- an install (colcon's `install/siam_tracker_ros`, `pip install .`): the files are in
  `<prefix>/share/siam_tracker_ros/`, where `<prefix>` is the install prefix this very
  package folder lies under (`<prefix>/lib/python3.X/site-packages/siam_tracker_ros`);
- other prefixes that hold the share folder: each of AMENT_PREFIX_PATH (the ament index
  roots), then sys.prefix.
An installed package never looks into a source checkout it was built from.
Plain paths only: no ROS import, so the core keeps working without ROS.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

PACKAGE = "siam_tracker_ros"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PREFIX_DEPTH = 5   # <prefix>/lib/python3.X/site-packages/siam_tracker_ros, or local/lib/...


def checkout_root() -> Optional[str]:
    """The source checkout this package is imported from, else None."""
    root = os.path.dirname(PACKAGE_DIR)
    marker_files = ("package.xml", "setup.py", "CMakeLists.txt")
    if all(os.path.isfile(os.path.join(root, f)) for f in marker_files) and \
            os.path.isdir(os.path.join(root, "config")):
        return root
    return None


def install_share_dir() -> Optional[str]:
    """`<prefix>/share/siam_tracker_ros` of the install prefix this package lies under."""
    folder = PACKAGE_DIR
    for _ in range(_PREFIX_DEPTH):
        folder = os.path.dirname(folder)
        candidate = os.path.join(folder, "share", PACKAGE)
        if os.path.isfile(os.path.join(candidate, "package.xml")):
            return candidate
    return None


def share_dirs() -> List[str]:
    """The package's data folders, first match wins (see the module docstring)."""
    found = [checkout_root(), install_share_dir()]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            found.append(os.path.join(prefix, "share", PACKAGE))
    found.append(os.path.join(sys.prefix, "share", PACKAGE))
    unique = []
    for folder in found:
        if folder and os.path.isdir(folder) and os.path.realpath(folder) not in map(os.path.realpath, unique):
            unique.append(folder)
    return unique


def find_share_file(*parts: str) -> Optional[str]:
    """The first `share_dir/parts...` that exists, else None."""
    for folder in share_dirs():
        path = os.path.join(folder, *parts)
        if os.path.exists(path):
            return path
    return None


def shared_dirs() -> List[str]:
    """Where the project's shared data folder (data/sequences, weights/...) may be:
    $SIAM_SHARED_DIR alone when it is set (an empty folder there = no shared data), else
    `shared/` beside the source checkout this package runs from and beside the working
    directory's parent (`../shared`)."""
    if os.environ.get("SIAM_SHARED_DIR"):
        return [os.environ["SIAM_SHARED_DIR"]]
    found = [os.path.join(os.path.dirname(PACKAGE_DIR), "..", "shared"), os.path.join(os.getcwd(), "..", "shared")]
    return list(dict.fromkeys(os.path.normpath(p) for p in found))
