"""The node's targets: several ids, one shared model, one supervisor per target.

`TargetSet` wraps the core's MultiTargetTracker (core/tracking/multi.py: the
TRACKING targets of a frame in one batched network call, LOST ones through
their supervisor's search) with what only the node needs: the last state and
box of every id, ids kept as LOST after an image size change or a failed
tracking step until they are initialised again, and the mapping of the
node's parameters onto the supervisor's (core/tracking/monitor.py).

No ROS imports: unit-testable with a tracker alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..core import geometry
from ..core.tracking.base import TrackResult, TrackState
from ..core.tracking.monitor import SUPERVISOR_DEFAULTS
from ..core.tracking.multi import MultiTargetTracker

# Node parameter -> supervisor parameter (the supervisor decides from several kinds of
# evidence, core/tracking/monitor.py; the node's two historical thresholds map onto):
#   lost_threshold    -> score_lost:    a frame whose score is below it is a bad frame
#                                       (LOST after lost_frames bad frames in a row)
#   recover_threshold -> recover_below: a LOST target's re-found candidate must have badness
#                                       at or below it (on recover_frames frames) to be TRACKING
NODE_TO_SUPERVISOR: Dict[str, str] = {"lost_threshold": "score_lost", "recover_threshold": "recover_below"}


def supervisor_key(node_param: str) -> Optional[str]:
    key = NODE_TO_SUPERVISOR.get(node_param)
    return key if key in SUPERVISOR_DEFAULTS else None


def extra_supervisor_params() -> Dict[str, Any]:
    """Supervisor parameters without a node parameter of their own: the node declares them
    as `supervisor.<name>` (defaults from SUPERVISOR_DEFAULTS; bool / int / float only)."""
    mapped = set(NODE_TO_SUPERVISOR.values())
    return {k: v for k, v in SUPERVISOR_DEFAULTS.items()
            if k not in mapped and isinstance(v, (bool, int, float))}


# `supervisor.enabled` (node parameter, default True): False = raw tracker results, never LOST
# (bag comparisons with siam-eval, debugging). When the supervisor has an `enabled` key of its
# own it is passed on (and changes at run time); otherwise the node builds its targets without
# supervisor (MultiTargetTracker(supervisor_params=None)) and the switch needs a reload.
SUPERVISOR_HAS_SWITCH = "enabled" in SUPERVISOR_DEFAULTS


def declared_supervisor_params() -> Dict[str, Any]:
    """What the node declares as `supervisor.<name>` (with defaults)."""
    out = extra_supervisor_params()
    out.setdefault("enabled", True)
    return out


def supervisor_params_from(values: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The supervisor's keyword arguments from the node's parameter values
    (`lost_threshold`, `recover_threshold`, `supervisor.*`); None when `supervisor.enabled` is
    false and the supervisor has no switch of its own (then: no supervisor, raw results)."""
    if not SUPERVISOR_HAS_SWITCH and values.get("supervisor.enabled", True) is False:
        return None
    out: Dict[str, Any] = {}
    for node_name in NODE_TO_SUPERVISOR:
        key = supervisor_key(node_name)
        if key is not None and node_name in values:
            out[key] = values[node_name]
    for key in extra_supervisor_params():
        if f"supervisor.{key}" in values:
            out[key] = values[f"supervisor.{key}"]
    return out


# ---- the node's view -------------------------------------------------------

ASPECT_TOLERANCE = 0.02   # image aspect ratio change (relative) still treated as a pure rescale


@dataclass
class TargetRecord:
    state: TrackState = TrackState.TRACKING
    box: Optional[np.ndarray] = None        # last reported box (image px of `image_size`)
    score: float = 1.0
    frames: int = 0                          # frames tracked since the init
    lost_events: int = 0                     # TRACKING -> LOST transitions since the init
    note: str = ""                           # why the target is LOST without a tracker (orphans)
    evidence: Dict[str, float] = field(default_factory=dict)


class TargetSet:
    """The node's targets. Not thread-safe: the node's worker owns it."""

    def __init__(self, build_fn: Callable[[], Any], supervisor_params: Optional[Dict[str, Any]] = None):
        """supervisor_params None: no supervisor (raw tracker results, never LOST)."""
        self.supervised = supervisor_params is not None
        self.supervisor_params = dict(supervisor_params or {})
        self.mt = MultiTargetTracker(build_fn, supervisor_params=(
            self.supervisor_params if self.supervised else None))
        self.records: Dict[int, TargetRecord] = {}
        self.orphans: Dict[int, TargetRecord] = {}   # ids reported LOST until the next init
        self.last_failures: List[str] = []           # the last track() call's failed targets (texts)

    # ids -------------------------------------------------------------
    @property
    def ids(self) -> List[int]:
        """Every id the node reports (tracked ones and orphans), sorted."""
        return sorted(set(self.mt.ids) | set(self.orphans))

    @property
    def tracked_ids(self) -> List[int]:
        return list(self.mt.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, target_id: int) -> bool:
        return int(target_id) in self.records or int(target_id) in self.orphans

    def states(self) -> Dict[int, str]:
        names = {TrackState.IDLE: "IDLE", TrackState.TRACKING: "TRACKING", TrackState.LOST: "LOST"}
        out = {i: names[TrackState(r.state)] for i, r in self.records.items()}
        out.update({i: "LOST" for i in self.orphans})
        return out

    # changes ---------------------------------------------------------
    def add(self, target_id: int, image: np.ndarray, box) -> None:
        target_id = int(target_id)
        self.mt.add(target_id, image, np.asarray(box, dtype=np.float64))
        self.orphans.pop(target_id, None)
        self.records[target_id] = TargetRecord(box=np.asarray(box, dtype=np.float64).copy())

    def remove(self, target_id: int) -> bool:
        target_id = int(target_id)
        known = target_id in self
        if target_id in self.mt.ids:
            self.mt.remove(target_id)
        self.records.pop(target_id, None)
        self.orphans.pop(target_id, None)
        return known

    def clear(self) -> None:
        self.mt.clear()
        self.records.clear()
        self.orphans.clear()

    def set_supervisor_params(self, **kw) -> None:
        """ValueError for a value the supervisor refuses; without supervisor only stored."""
        if self.supervised:
            self.mt.set_supervisor_params(**kw)
        self.supervisor_params.update(kw)

    # tracking --------------------------------------------------------
    def track(self, image: np.ndarray, ids: Optional[List[int]] = None
              ) -> Tuple[Dict[int, TrackResult], List[Tuple[int, TrackState, TrackState, float]]]:
        """(results by id, state transitions (id, old, new, score)). `ids`: a subset of the
        tracked ids (None = all; ids not tracked are left out).

        A target whose tracking step raised (the core's `mt.errors`) is not in the results:
        it becomes an orphan (reported LOST with a zero box until a new init; a change to LOST
        with score 0 when it was not LOST), and `last_failures` (reset by every call) holds one
        text per such target: "target <id>: tracking failed: <ExcType>: <msg>; send a new init"."""
        self.last_failures = []
        tracked = self.mt.ids
        if ids is not None:
            ids = [i for i in ids if i in tracked]
        if not tracked or (ids is not None and not ids):
            return {}, []
        results = self.mt.track(image, ids=ids)
        changes = []
        for i, exc in sorted(self.mt.errors.items()):
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            why = f"tracking failed: {what}; send a new init"
            old = self.records.pop(i, TargetRecord()).state
            self.mt.remove(i)
            self.orphans[i] = TargetRecord(state=TrackState.LOST, note=why)
            if old != TrackState.LOST:
                changes.append((i, old, TrackState.LOST, 0.0))
            self.last_failures.append(f"target {i}: {why}")
        for i, res in results.items():
            rec = self.records.setdefault(i, TargetRecord())
            new = TrackState(res.state)
            if new != rec.state:
                changes.append((i, rec.state, new, float(res.score)))
                if new == TrackState.LOST:
                    rec.lost_events += 1
            rec.state, rec.score = new, float(res.score)
            rec.box = np.asarray(res.box, dtype=np.float64).copy()
            rec.frames += 1
            rec.evidence = dict(getattr(res, "evidence", {}) or {})
        return results, changes

    def rescale(self, image: np.ndarray, old_size: Tuple[int, int]) -> List[str]:
        """The images changed size from `old_size` to `image`'s. Same aspect ratio (within 2%):
        every TRACKING target is initialised again on `image` at its last box scaled to the new
        size (the template is taken again); a LOST target has no box to trust and becomes an
        orphan (reported LOST with a zero box until a new init). Another aspect ratio (a crop /
        region of interest, not a rescale): every target becomes an orphan. Returns one text
        per target saying what happened."""
        h, w = image.shape[:2]
        ow, oh = old_size
        sx, sy = w / float(ow), h / float(oh)
        same_aspect = abs(sx / sy - 1.0) <= ASPECT_TOLERANCE
        notes = []
        for i in list(self.mt.ids):
            rec = self.records.get(i, TargetRecord(state=TrackState.LOST))
            if same_aspect and rec.state == TrackState.TRACKING and rec.box is not None:
                box = rec.box * np.array([sx, sy, sx, sy])
                try:
                    box = geometry.clip_box(geometry.validate_box(box, w, h), w, h)
                    self.add(i, image, box)
                    notes.append(f"target {i}: box scaled by {sx:.3f} x {sy:.3f} and initialised again")
                    continue
                except ValueError as exc:
                    why = f"scaled box invalid ({exc})"
            else:
                why = ("the image aspect ratio changed" if not same_aspect
                       else "it was LOST (no box to scale)")
            self.mt.remove(i)
            self.records.pop(i, None)
            self.orphans[i] = TargetRecord(state=TrackState.LOST, note=f"image size change: {why}; "
                                                                          "send a new init")
            notes.append(f"target {i}: LOST until a new init ({why})")
        return notes
