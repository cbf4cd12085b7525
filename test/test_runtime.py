"""core/runtime.py: the allocator setting every Tracker applies once per process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("from siam_tracker_ros.core import runtime; "
         "print(runtime.tune_malloc(), runtime.tune_malloc(), runtime._result)")


def _probe(**env) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip()


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc(), reason="tune_malloc changes only glibc's malloc (this is not glibc)")
def test_tune_malloc_sets_the_thresholds_once_on_glibc():
    assert _probe(SIAM_TRACKER_MALLOC_TUNING="1") == "True True True"


def test_tune_malloc_can_be_switched_off():
    assert _probe(SIAM_TRACKER_MALLOC_TUNING="0") == "False False False"


def test_every_tracker_applies_it():
    out = subprocess.run([sys.executable, "-c",
                          "import torch; from siam_tracker_ros.core import runtime; "
                          "from siam_tracker_ros.core.tracking.loading import build_tracker; "
                          "build_tracker('siamfc', device='cpu', allow_untrained=True); print(runtime._result is not None)"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"
