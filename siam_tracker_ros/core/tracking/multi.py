"""Several targets in one frame: one shared model, one network call for all.

    mt = MultiTargetTracker(build_fn, supervisor_params={})   # build_fn(): a fresh Tracker
    mt.add(7, image, box)             # new id, or re-init of an existing id
    results = mt.track(image)         # {7: TrackResult, ...}
    mt.remove(7); mt.clear(); mt.ids; len(mt)

Each target has its own Tracker (built by `build_fn`, which must hand every
tracker the SAME model object: build it once, e.g.
`loading.load(name, device=dev).new_tracker`, core/tracking/loading.py)
and, when `supervisor_params` is given, its own TargetSupervisor
(core/tracking/monitor.py) that decides TRACKING / LOST.

One frame (`track(image)`):
1. targets whose supervisor is searching (LOST) run `sup.search(image)`, each
   on its own (their re-acquisition search is not the per-frame network call);
2. every other target: `tracker.track_prepare(image)` (its search crop(s)),
   the template states concatenated along dim 0 (tensors, or tuples / lists /
   dicts of tensors, leaf by leaf; a target whose state has batch 1 but K
   search crops -- SiamFC's scale pyramid -- gets its state repeated K times),
   the crops concatenated along dim 0, ONE `model.track(states, crops)`, then
   each target's rows of every output go to `tracker.track_finish` (the
   tracker's own post-processing and state update) and, with a supervisor, to
   `sup.update(image, raw_result)`.
The results are those of running each target alone (`sup.step(image)`, or
`tracker.track(image)` without supervisor) up to floating-point differences
of the batched convolutions (test/test_multi.py: boxes within 1e-4 px,
scores within 1e-5). With one target to run, the single-target path
`tracker.track(image)` is used as is (bit-identical).

Exactness: on the CPU every registered model gives bit-identical per-target
results batched and alone (NanoTrack / MobileNetV3 run their tiny GEMMs per
sample at inference for this, models/nanotrack.py, models/mobilenetv3.py).
On CUDA, cuDNN may pick other convolution algorithms for other batch sizes:
expect float-rounding differences there, which the closed tracking loop can
grow to fractions of a pixel over frames. TorchEngine(compile=True) compiles
once per batch size seen (the number of TRACKING targets).
Speed: one call instead of N saves the per-call overhead and, on the CPU, runs
the convolutions on larger blocks, once the memory allocator keeps the
per-frame tensors (core/runtime.py). Figures: docs/benchmarks/multi_target.md
(`siam-bench --targets`, the command is in it).

Fallbacks to one network call per target (same results, no batching):
- engines that cannot batch targets: the onnxruntime engine's export has a
  fixed batch-1 template and a fixed search batch (core/engines/export.py),
  so it declares `supports_target_batch = False`;
- trackers built on different model objects (build_fn without a shared model).

Timing of a batched result: "crop" and "post" are the target's own;
"network" is its share of the batched call (call time / number of targets)
plus the host transfer of its outputs; "network_batched" is the whole call;
"total" = crop + network + post. Summed over targets these add up to the
frame's time.

One failing target does not fail the frame: when a target's work raises
(its `sup.search`, `track_prepare`, its share of the network call,
`track_finish` or `sup.update`), `track` leaves it out of the returned dict
and keeps the exception in `mt.errors` ({id: exception}, reset by every
`track` call); the other targets' results are those of a frame without it.
If the batched network call raises, the network runs again once per target
(on the crops already prepared; no "network_batched" timing then) so that
only the culprit fails; no target's
`track_finish` (which updates its state) runs twice on a frame. A failed
target stays in the tracker: the caller removes or re-initialises it.
`track_batch(..., errors={})` does the same for plain trackers (without
`errors` it raises as before).

supervisor_params: None -> no supervisor: results are the trackers' raw
results (state TRACKING, or LOST only below the tracker's `lost_threshold`);
a dict (`{}` for the documented defaults) -> TargetSupervisor(tracker, **params)
per target. `supervisor_cls` replaces TargetSupervisor (tests).
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np

from .base import Tracker, TrackResult
from .batching import track_batch
from .monitor import TargetSupervisor
from .params import validate_supervisor_params


# --------------------------------------------------------------------------- the tracker
class _Target:
    __slots__ = ("tracker", "supervisor")

    def __init__(self, tracker: Tracker, supervisor):
        self.tracker = tracker
        self.supervisor = supervisor


def _target_id(target_id) -> int:
    if isinstance(target_id, bool):
        raise TypeError("target id must be an integer, not bool")
    return operator.index(target_id)


class MultiTargetTracker:
    """Targets by integer id, one shared model, batched network calls (module doc)."""

    def __init__(self, build_fn: Callable[[], Tracker], supervisor_params: Optional[Dict[str, Any]] = None,
                 supervisor_cls: Optional[type] = None):
        self._build = build_fn
        self._targets: Dict[int, _Target] = {}
        self.errors: Dict[int, Exception] = {}     # the last track() call's failed targets
        self._supervisor_cls = supervisor_cls
        self._validate: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None
        self.supervisor_params: Optional[Dict[str, Any]] = None
        if supervisor_params is not None:
            if supervisor_cls is None:
                self._supervisor_cls = TargetSupervisor
                self._validate = validate_supervisor_params
                supervisor_params = {**supervisor_params, **validate_supervisor_params(supervisor_params)}
            self.supervisor_params = dict(supervisor_params)

    # -- targets -------------------------------------------------------------------
    @property
    def supervised(self) -> bool:
        return self.supervisor_params is not None

    @property
    def ids(self) -> List[int]:
        return sorted(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, target_id) -> bool:
        return target_id in self._targets

    def tracker(self, target_id: int) -> Tracker:
        return self._targets[_target_id(target_id)].tracker

    def supervisor(self, target_id: int):
        """The target's TargetSupervisor (None without supervision)."""
        return self._targets[_target_id(target_id)].supervisor

    def add(self, target_id: int, image: np.ndarray, box) -> None:
        """Start tracking `box` in `image` as `target_id`; an existing id is re-initialised
        (a fresh tracker and supervisor; the old one stays if this init fails)."""
        tid = _target_id(target_id)
        tracker = self._build()
        if self.supervised:
            sup = self._supervisor_cls(tracker, **self.supervisor_params)
            sup.init(image, box)
        else:
            sup = None
            tracker.init(image, box)
        self._targets[tid] = _Target(tracker, sup)

    def remove(self, target_id: int) -> bool:
        """Drop one id; False when it was not there."""
        return self._targets.pop(_target_id(target_id), None) is not None

    def clear(self) -> None:
        self._targets.clear()

    def set_supervisor_params(self, **kw) -> None:
        """Change supervisor parameters of every target (and of targets added later).
        A bad value raises ValueError and changes nothing."""
        if not self.supervised:
            raise RuntimeError("MultiTargetTracker built without supervisor (supervisor_params=None)")
        if self._validate is not None:
            kw = self._validate(kw)          # raises before anything changed
        sups = [t.supervisor for t in self._targets.values()]
        if sups:
            sups[0].set_params(**kw)         # (a custom supervisor_cls validates here)
            for s in sups[1:]:
                s.set_params(**kw)
        self.supervisor_params.update(kw)

    # -- one frame -----------------------------------------------------------------
    def track(self, image: np.ndarray, ids: Optional[Iterable[int]] = None) -> Dict[int, TrackResult]:
        """Track every target (or only `ids`) in `image` -> {id: TrackResult}, ids ascending.
        Unknown ids in `ids` raise KeyError. A target whose work raises is left out of the
        result and its exception kept in `self.errors` (module doc)."""
        self.errors = {}
        if ids is None:
            chosen = self.ids
        else:
            chosen = sorted({_target_id(i) for i in ids})
            missing = [i for i in chosen if i not in self._targets]
            if missing:
                raise KeyError(f"unknown target id(s): {missing}")
        results: Dict[int, TrackResult] = {}
        batch: List[int] = []
        for tid in chosen:
            sup = self._targets[tid].supervisor
            try:
                if sup is not None and sup.searching:
                    results[tid] = sup.search(image)
                else:
                    batch.append(tid)
            except Exception as exc:
                self.errors[tid] = exc
        failed: Dict[int, Exception] = {}
        raw = track_batch([self._targets[tid].tracker for tid in batch], image, errors=failed)
        for j, (tid, r) in enumerate(zip(batch, raw)):
            if j in failed:
                self.errors[tid] = failed[j]
                continue
            sup = self._targets[tid].supervisor
            try:
                results[tid] = sup.update(image, r) if sup is not None else r
            except Exception as exc:
                self.errors[tid] = exc
        return {tid: results[tid] for tid in chosen if tid in results}

    def __repr__(self) -> str:
        return f"MultiTargetTracker(ids={self.ids}, supervised={self.supervised})"


__all__ = ["MultiTargetTracker"]
