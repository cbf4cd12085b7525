"""Acceptance of the lost state (issue 6) with the default model, on the runs of the
benchmark (evaluation/lost_bench.py builds them from the shared validation sequences;
docs/benchmarks/lost_state.md has the same table with every run at full length):

- the target erased for 10 and for 30 frames after 20 visible ones, then back for 25
  (5 sequences: the boat of GOT10k and the bag of VOT are too large to erase);
- a look-alike (a copy of the target) crossing right beside it over 20 frames (4
  sequences: no room for it beside the big ones);
- the 7 sequences as they are (here their first PLAIN_FRAMES frames, to keep the file
  near half a minute; OTB_Crossing's clutter, the pedestrian in front of a dark car,
  lies in frames 33-48).

The issue asks: LOST within 5 frames of the target leaving; re-acquired (TRACKING,
IoU > 0.5) within 10 frames of its return; no LOST on frames where the target is
visible and tracked (lost_bench.py defines every measure). Asserted as asked, with
one bound stated apart: while a copy of the target crosses right beside it, the
tracker itself may be pulled onto the copy or off the target for a few frames and
the supervisor then rightly reports LOST while its search box may still overlap the
target. Measured 2026-11-21: 3 of 225 such frames (1.3 %, VOT2015_ball1), so at
most 3 % there.
"""
from __future__ import annotations

import pytest
import torch

from siam_tracker_ros.evaluation import lost_bench as lb

LEAD, ABSENT, AFTER, CROSS = 20, (10, 30), 25, 20
PLAIN_FRAMES = 80


@pytest.fixture(scope="module")
def measured(sequences_dir):
    from siam_tracker_ros.core.tracking.loading import build_tracker
    torch.set_num_threads(1)
    seqs, skipped = lb.build_sequences(str(sequences_dir), None, ["absent", "distractor", "plain"], LEAD,
                                       list(ABSENT), AFTER, CROSS, PLAIN_FRAMES)
    assert seqs, "no test sequence could be made"
    tracker = build_tracker("default", device="cpu")
    scores, _ = lb.run_model(tracker, {}, seqs)
    summary = lb.summarize(scores)
    by_kind = {k: lb.summarize([s for s in scores if s["kind"] == k]) for k in ("absent", "distractor", "plain")}
    table = "\n".join(lb.per_run_lines("default", scores) + [""]
                      + lb.summary_lines("default", summary, by_kind))
    print("\n" + table)
    print("skipped: " + "; ".join(skipped))
    return scores, summary, table


def test_lost_within_5_frames_of_leaving(measured):
    scores, summary, table = measured
    runs = [s for s in scores if s["kind"] == "absent"]
    assert len(runs) >= 6, table
    late = [f"{s['name']}: {s['to_lost']}" for s in runs if s["to_lost"] is None or s["to_lost"] > 5]
    assert not late, f"LOST later than 5 frames after leaving: {late}\n{table}"


def test_reacquired_within_10_frames_of_return(measured):
    scores, summary, table = measured
    runs = [s for s in scores if s["kind"] == "absent"]
    missed = [f"{s['name']}: {s['to_reacquire']}" for s in runs
              if s["to_reacquire"] is None or s["to_reacquire"] > 10]
    assert not missed, f"not re-acquired within 10 frames of the return: {missed}\n{table}"


def test_no_lost_while_visible_and_tracked(measured):
    """Visible-and-tracked frames of the erase-and-return runs (before leaving, and
    from 10 frames after the return) and of the sequences as they are."""
    scores, summary, table = measured
    runs = [s for s in scores if s["kind"] in ("absent", "plain")]
    tracked = sum(s["tracked_frames"] for s in runs)
    false_lost = sum(s["false_lost"] for s in runs)
    print(f"false-LOST rate (target visible and tracked, no look-alike): {false_lost}/{tracked} = "
          f"{100 * false_lost / max(tracked, 1):.2f}%")
    print(f"false-LOST rate (all runs, look-alike crossings included): {summary['false_lost']}/"
          f"{summary['tracked_frames']} = {100 * summary['false_lost_rate']:.2f}%")
    assert tracked >= 500, table
    offenders = [f"{s['name']}: {s['false_lost']}/{s['tracked_frames']}" for s in runs if s["false_lost"]]
    assert not offenders, f"LOST on visible and tracked frames: {offenders}\n{table}"


def test_lookalike_crossing_keeps_the_target(measured):
    """A copy of the target passing right beside it: at most 3 % LOST frames while the
    box is on the target (module docstring), and not TRACKING the copy for long."""
    scores, summary, table = measured
    runs = [s for s in scores if s["kind"] == "distractor"]
    assert runs, table
    tracked = sum(s["tracked_frames"] for s in runs)
    false_lost = sum(s["false_lost"] for s in runs)
    print(f"false-LOST rate during look-alike crossings: {false_lost}/{tracked} = "
          f"{100 * false_lost / max(tracked, 1):.2f}%")
    assert tracked >= 100 and false_lost / tracked <= 0.03, table
    assert max(s["wrong_tracking"] for s in runs) <= 15, table


def test_grey_runs_are_the_colour_runs_in_grey(sequences_dir):
    """lost_bench --grey (lost_state_grey.md): the same made-up frames, as a mono camera
    gives them (3 equal channels), so the supervisor's colour evidence is off there."""
    import cv2
    import numpy as np
    from siam_tracker_ros.core.tracking.monitor import colour_histogram
    colour, _ = lb.build_sequences(str(sequences_dir), ["OTB_Crossing"], ["absent"], 5, [3], 3, 3, None)
    grey, _ = lb.build_sequences(str(sequences_dir), ["OTB_Crossing"], ["absent"], 5, [3], 3, 3, None, grey=True)
    i = colour[0].leave                                     # an erased frame: the erasure is kept
    expected = cv2.cvtColor(cv2.cvtColor(colour[0].frame(i), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(grey[0].frame(i), expected)
    assert colour_histogram(grey[0].frame(0), colour[0].gt[0]) is None
    assert colour_histogram(colour[0].frame(0), colour[0].gt[0]) is not None
