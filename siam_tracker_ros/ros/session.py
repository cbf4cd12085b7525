"""The node's tracking session, without ROS: targets by id on one shared model, and
everything that happens to them between two frames.

    session = TrackingSession(loaded, supervisor_params, inbox, health, decode, log)
    session.request_init(stamp, box, target_id, max_targets)   # executor thread: store only
    session.request_removal(target_id)
    report = session.process(inbox.take(), catch_up_max)       # worker thread: all the work
    report.targets      # [TargetReport]: what the publishers send for this frame
    report.acks         # inits applied to an earlier frame: acknowledged on that frame

One `process` call: removals, then the frame is decoded (`decode`: None when
unreadable), an image size change is handled (same aspect ratio: TRACKING
targets re-initialised at their scaled box; otherwise, and for LOST targets:
orphans), then the inits: each on the frame it was drawn on, followed by a
catch-up through the cached frames after it (this target only, at most
`catch_up_max`, evenly spaced); an init drawn on a frame of another size is
scaled to the current size and applied to the newest frame. Then every target is
tracked (core/tracking/multi.py: one batched network call, LOST targets through
their supervisor's search). A target whose tracking step raises becomes an
orphan: reported LOST with a zero box until a new init.

Threads: request_* and view() take a short lock; process / clear / set_* run on
the worker (the node holds its processing lock around them). `log(level, text,
kind=None)` is the owner's logger: level info / warning / error, `kind` names
an error for counting and throttling.
"""
from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from ..core import geometry
from ..core.engines.precision import engine_setup
from ..core.tracking.base import TrackResult, TrackState
from ..core.tracking.loading import LoadedModel, load
from ..core.tracking.multi import MultiTargetTracker
from . import health as health_mod
from .inbox import Frame, FrameInbox

ASPECT_TOLERANCE = 0.02   # image aspect ratio change (relative) still treated as a pure rescale
INIT_FLOOD_RATE = 20      # init messages per second above which /diagnostics reports an init flood

Log = Callable[..., None]


class StartupError(RuntimeError):
    """The model cannot be loaded (model, weights, device, parameters); the text says why."""


def open_model(values: Dict[str, Any]) -> LoadedModel:
    """The shared model from the node's parameter values; StartupError with the reason."""
    if values["num_threads"] > 0:
        import torch
        torch.set_num_threads(values["num_threads"])
    try:
        engine, options = engine_setup(values["engine"], values.get("precision", "fp32"), values["device"],
                                       values["num_threads"])
    except ValueError as exc:                     # this engine / precision cannot run here
        raise StartupError(str(exc)) from exc
    try:
        return load(values["model"], weights=values["weights"] or None, device=values["device"],
                    engine=engine, engine_options=options or None,
                    allow_untrained=values["allow_untrained"])
    except Exception as exc:  # unknown model, unreadable / corrupt weights, missing CUDA...
        raise StartupError(f"cannot build tracker for model '{values['model']}': "
                           f"{type(exc).__name__}: {exc}") from exc


def release_memory() -> None:
    """After a model is dropped: collect it, and give CUDA's cached blocks back."""
    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - releasing is best effort
        pass


@dataclass
class PendingInit:
    frame: Frame
    box: np.ndarray                          # as sent (checked against the frame on the worker)
    target_id: int
    size: Optional[Tuple[int, int]] = None   # (w, h) of the frame the box was drawn on, once decoded


@dataclass
class TargetRecord:
    """What the node reports about one id (its /diagnostics status)."""
    state: TrackState = TrackState.TRACKING
    box: Optional[np.ndarray] = None        # last reported box (image px of the current size)
    score: float = 1.0
    frames: int = 0                          # frames tracked since the init
    lost_events: int = 0                     # TRACKING -> LOST transitions since the init
    note: str = ""                           # why the target is LOST without a tracker (orphans)
    evidence: Dict[str, float] = field(default_factory=dict)


@dataclass
class TargetReport:
    """One target on one frame, as the publishers send it."""
    target_id: int
    state: TrackState
    box: Optional[np.ndarray]               # used in state TRACKING only
    score: float
    result: Optional[TrackResult] = None    # the tracker's result (confidence map); None: init / orphan


@dataclass
class FrameReport:
    started: float                          # time.monotonic() when processing began
    finished: float = 0.0                   # ... and ended (before publishing)
    frame: Optional[Frame] = None           # the frame answered (None: inits only)
    image: Optional[np.ndarray] = None
    targets: List[TargetReport] = field(default_factory=list)
    acks: List[Tuple[Frame, TargetReport, Tuple[int, int]]] = field(default_factory=list)


class TrackingSession:
    def __init__(self, loaded: LoadedModel, supervisor_params: Optional[Dict[str, Any]], inbox: FrameInbox,
                 health: health_mod.NodeHealth, decode: Callable[[Frame], Optional[np.ndarray]], log: Log):
        """supervisor_params None: no supervisor (raw tracker results, never LOST)."""
        self.loaded = loaded
        self.inbox, self.health, self.decode, self.log = inbox, health, decode, log
        # One params dict for every target's tracker: a runtime change of a tracking
        # hyper-parameter reaches all of them at the next frame.
        self.tracker_params: Optional[Dict[str, Any]] = None
        self.tracker_params = self._new_tracker().params
        self.mt = MultiTargetTracker(self._new_tracker, supervisor_params=supervisor_params)
        self.records: Dict[int, TargetRecord] = {}
        self.orphans: Dict[int, TargetRecord] = {}   # ids reported LOST until the next init
        self.frame_size: Optional[Tuple[int, int]] = None
        self._lock = threading.Lock()
        self._pending_inits: Dict[int, PendingInit] = {}
        self._pending_removals: Set[int] = set()
        self._view: Dict[int, TargetRecord] = {}
        self._known: Set[int] = set()       # ids tracked or about to be (max_targets)
        self._last_flood = -1e9
        self._decoded: Optional[Tuple[Frame, np.ndarray]] = None   # the frame being processed, decoded
        self.image_topic = "image"          # named in log lines

    def _new_tracker(self):
        tracker = self.loaded.new_tracker()
        if self.tracker_params is not None:
            tracker.params = self.tracker_params
        return tracker

    @property
    def ids(self) -> List[int]:
        """Every id reported (tracked ones and orphans), sorted."""
        return sorted(set(self.mt.ids) | set(self.orphans))

    def view(self) -> Dict[int, TargetRecord]:
        """The targets as of the last processed frame (a snapshot for other threads)."""
        with self._lock:
            return dict(self._view)

    # -- requests (executor thread) --------------------------------------------------
    def request_init(self, stamp: int, box, target_id: int, max_targets: int,
                     max_pixels: Optional[int] = None) -> Optional[str]:
        """Store an init for the worker; None when stored, else why it was refused (logged and
        counted in inits_refused). What can be checked without decoding is checked here (id,
        box against the size the frame's message or header gives, max_targets); the worker
        checks the rest when it decodes the frame (also counted when refused there)."""
        why = self._refusal(stamp, box, target_id, max_targets, max_pixels)
        if why is not None:
            self.health.count("inits_refused")
            self.log("error", why[1], kind=why[0])
            return why[1]
        return None

    def _refusal(self, stamp: int, box, target_id: int, max_targets: int,
                 max_pixels: Optional[int]) -> Optional[Tuple[str, str]]:
        """(kind, reason) when the init is refused, else None (stored for the worker)."""
        now = time.monotonic()
        rate = self.health.init_received(now)
        if rate > INIT_FLOOD_RATE and now - self._last_flood > self.health.window:
            self._last_flood = now
            self.health.event("init_floods", f"init flood: {rate} init messages in the last second "
                                             "(per id only the newest is applied)", now=now)
            self.log("warning", f"init flood: {rate} init messages in the last second")
        if target_id == 0:
            return "init_id", "init ignored: target_id 0 means 'no target'; use an id from 1 on"
        box = np.asarray(box, dtype=np.float64)
        frame = self.inbox.find(stamp)
        if frame is None:
            return "init_no_image", f"init ignored: no image received yet on '{self.image_topic}'"
        size = frame.size
        if frame.unreadable is not None or size is None:
            why = frame.unreadable or frame.header_error
            return "init_frame", f"init ignored: the frame it names cannot be read: {why}"
        try:
            if size[0] < 2 or size[1] < 2:
                raise ValueError(f"the frame it names is {size[0]}x{size[1]} pixels, too small to track")
            if max_pixels and size[0] * size[1] > max_pixels:
                raise ValueError(f"the frame it names is {size[0]}x{size[1]} pixels, more than "
                                 f"max_image_pixels = {max_pixels}")
            geometry.validate_box(box, *size)
        except ValueError as exc:
            return "init_box", f"init ignored: {exc}"
        if stamp and frame.stamp != stamp:
            self.log("warning", f"init: no cached frame has stamp {stamp * 1e-9:.3f}; using the nearest "
                                f"({frame.stamp * 1e-9:.3f}, {(frame.stamp - stamp) * 1e-9:+.3f} s)", kind="init_stamp")
        with self._lock:
            ids = self._known | set(self._pending_inits)
            if target_id not in ids and len(ids) >= max_targets:
                return "init_full", (f"init ignored: target {target_id} would be a target beyond max_targets "
                                     f"({max_targets}); remove one (~/remove) or reset first")
            if target_id in self._pending_inits:
                self.health.count("inits_coalesced")
            self._pending_inits[target_id] = PendingInit(frame, box, target_id)
            self._pending_removals.discard(target_id)
        return None

    def request_removal(self, target_id: int) -> None:
        with self._lock:
            if self._pending_inits.pop(target_id, None) is not None:
                self.health.count("inits_coalesced")     # a later request for the id wins
            self._pending_removals.add(target_id)

    # -- the worker ------------------------------------------------------------------
    def clear(self) -> int:
        """Drop every target and pending request; returns how many targets there were."""
        with self._lock:
            if self._pending_inits:
                self.health.count("inits_coalesced", len(self._pending_inits))
            self._pending_inits.clear()
            self._pending_removals.clear()
            n = len(self.ids)
            self.mt.clear()
            self.records.clear()
            self.orphans.clear()
            self._view, self._known = {}, set()
        return n

    def set_supervisor_params(self, **kw) -> None:
        """Already checked (core/tracking/params.py); without supervisor only kept for the next load."""
        if self.mt.supervised:
            self.mt.set_supervisor_params(**kw)

    def process(self, frame: Optional[Frame], catch_up_max: int) -> FrameReport:
        report = FrameReport(time.monotonic())
        with self._lock:
            inits, self._pending_inits = self._pending_inits, {}
            removals, self._pending_removals = self._pending_removals, set()
            # until the view is updated, requests count these ids as targets (max_targets)
            self._known = (self._known - removals) | set(inits)
        for target_id in sorted(removals):
            if self._remove(target_id):
                self.log("info", f"target {target_id} removed")
            else:
                self.log("warning", f"remove: no target {target_id}", kind="remove_unknown")
        frame, image = self._take_frame(frame)
        if image is not None:
            self._check_size(image)
        answered: Dict[int, np.ndarray] = {}
        applied = 0
        for init in inits.values():
            box, on_frame = self._apply_init(init, frame, image, catch_up_max)
            applied += box is not None
            if box is not None and on_frame and frame is not None:
                answered[init.target_id] = box     # acknowledged by the frame's own results
            elif box is not None:
                report.acks.append((init.frame, TargetReport(init.target_id, TrackState.TRACKING, init.box, 1.0),
                                    init.size))
        if applied:
            self.health.count("inits_applied", applied)
        if frame is not None:
            results = self._track(image, ids=[i for i in self.mt.ids if i not in answered] if answered else None)
            report.frame, report.image = frame, image
            for target_id in self.ids:
                if target_id in answered:
                    report.targets.append(TargetReport(target_id, TrackState.TRACKING, answered[target_id], 1.0))
                elif target_id in results:
                    report.targets.append(self._target_report(target_id, results[target_id]))
                elif target_id in self.orphans:
                    report.targets.append(TargetReport(target_id, TrackState.LOST, None, 0.0))
        with self._lock:
            self._view = {i: replace(r, evidence=dict(r.evidence))
                          for i, r in {**self.records, **self.orphans}.items()}
            self._known = set(self._view)
        self._decoded = None
        report.finished = time.monotonic()
        return report

    def _take_frame(self, frame: Optional[Frame]) -> Tuple[Optional[Frame], Optional[np.ndarray]]:
        """Decode the worker's frame; only a frame that decoded counts for the stamp order
        (inbox.confirm). (None, None) when there is none, it is unreadable or out of order."""
        if frame is None:
            return None, None
        image = self.decode(frame)
        if image is None:
            self.health.drop(health_mod.DROP_UNREADABLE)
            frame.unreadable = frame.unreadable or "it did not decode"
            return None, None
        accepted, note = self.inbox.confirm(frame)
        if note is not None:
            self.log("info" if note[0] == "drop" else "warning", note[1], kind=note[0])
        if not accepted:
            return None, None
        self._decoded = (frame, image)    # an init on this very frame does not decode it again
        return frame, image

    def _image(self, frame: Frame) -> Optional[np.ndarray]:
        if self._decoded is not None and self._decoded[0] is frame:
            return self._decoded[1]
        return self.decode(frame)

    def _target_report(self, target_id: int, r: TrackResult) -> TargetReport:
        """A tracker result as reported; a TRACKING result whose box is not finite or has no
        area (a broken model or parameters) is reported LOST without a box, logged and counted."""
        state = TrackState(r.state)
        if state == TrackState.TRACKING and not geometry.is_usable_box(r.box):
            self.health.count("invalid_results")
            self.log("error", f"target {target_id}: the tracker gave a non-finite or empty box "
                              f"({r.box}); reported LOST", kind="invalid_result")
            return TargetReport(target_id, TrackState.LOST, None, 0.0, r)
        return TargetReport(target_id, state, r.box, r.score, r)

    def _add(self, target_id: int, image: np.ndarray, box) -> None:
        self.mt.add(target_id, image, np.asarray(box, dtype=np.float64))
        self.orphans.pop(target_id, None)
        self.records[target_id] = TargetRecord(box=np.asarray(box, dtype=np.float64).copy())

    def _refuse_unreadable(self, init: PendingInit) -> None:
        self.health.count("inits_refused")
        self.log("error", f"init ignored: the frame it names cannot be read: {init.frame.unreadable}",
                 kind="init_frame")

    def _add_init(self, target_id: int, image: np.ndarray, box) -> bool:
        """Apply an init; a tracker that refuses it (image, box, memory) refuses the init only:
        logged and counted, the frame goes on."""
        try:
            self._add(target_id, image, box)
            return True
        except Exception as exc:  # noqa: BLE001
            self.health.count("inits_refused")
            self.log("error", f"init ignored: target {target_id}: {type(exc).__name__}: {exc}", kind="init_failed")
            return False

    def _remove(self, target_id: int) -> bool:
        known = target_id in self.records or target_id in self.orphans
        if target_id in self.mt:
            self.mt.remove(target_id)
        self.records.pop(target_id, None)
        self.orphans.pop(target_id, None)
        return known

    def _orphan(self, target_id: int, note: str) -> TrackState:
        """The target loses its tracker: reported LOST until a new init; its previous state."""
        old = self.records.pop(target_id, TargetRecord(state=TrackState.LOST)).state
        if target_id in self.mt:
            self.mt.remove(target_id)
        self.orphans[target_id] = TargetRecord(state=TrackState.LOST, note=note)
        return old

    def _track(self, image: np.ndarray, ids: Optional[List[int]] = None) -> Dict[int, TrackResult]:
        """Track (a subset of) the targets; state changes logged, failed targets orphaned."""
        tracked = self.mt.ids
        if ids is not None:
            ids = [i for i in ids if i in tracked]
        if not tracked or (ids is not None and not ids):
            return {}
        results = self.mt.track(image, ids=ids)
        for i, exc in sorted(self.mt.errors.items()):
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            why = f"tracking failed: {what}; send a new init"
            old = self._orphan(i, why)
            if old != TrackState.LOST:
                self.log("info", f"target {i}: LOST (score 0.00)")
            self.log("error", f"target {i}: {why}", kind="tracking")
        for i, res in results.items():
            rec = self.records.setdefault(i, TargetRecord())
            new = TrackState(res.state)
            if new != rec.state:
                self.log("info", f"target {i}: {new.name} (score {float(res.score):.2f})")
                if new == TrackState.LOST:
                    rec.lost_events += 1
            rec.state, rec.score = new, float(res.score)
            rec.box = np.asarray(res.box, dtype=np.float64).copy()
            rec.frames += 1
            rec.evidence = dict(res.evidence or {})
        return results

    def _check_size(self, image: np.ndarray) -> None:
        """The images changed size: rescale or orphan the targets (module doc), drop cached
        frames of the old size."""
        size = (image.shape[1], image.shape[0])
        old, self.frame_size = self.frame_size, size
        if old is None or old == size:
            return
        notes = self._rescale(image, old) if self.mt.ids else []
        text = (f"image size changed from {old[0]}x{old[1]} to {size[0]}x{size[1]}"
                + (": " + "; ".join(notes) if notes else ""))
        self.health.event("size_changes", text)
        self.inbox.keep_size(size)
        self.log("warning", text)

    def _rescale(self, image: np.ndarray, old_size: Tuple[int, int]) -> List[str]:
        h, w = image.shape[:2]
        sx, sy = w / float(old_size[0]), h / float(old_size[1])
        same_aspect = abs(sx / sy - 1.0) <= ASPECT_TOLERANCE
        notes = []
        for i in list(self.mt.ids):
            rec = self.records.get(i, TargetRecord(state=TrackState.LOST))
            if same_aspect and rec.state == TrackState.TRACKING and rec.box is not None:
                box = rec.box * np.array([sx, sy, sx, sy])
                try:
                    box = geometry.clip_box(geometry.validate_box(box, w, h), w, h)
                    self._add(i, image, box)
                    notes.append(f"target {i}: box scaled by {sx:.3f} x {sy:.3f} and initialised again")
                    continue
                except ValueError as exc:
                    why = f"scaled box invalid ({exc})"
            else:
                why = "the image aspect ratio changed" if not same_aspect else "it was LOST (no box to scale)"
            self._orphan(i, f"image size change: {why}; send a new init")
            notes.append(f"target {i}: LOST until a new init ({why})")
        return notes

    def _init_box(self, init: PendingInit) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(init frame's image, the box checked and clipped to it); None (logged) if unusable."""
        init_image = self._image(init.frame) if init.frame.unreadable is None else None
        if init_image is None:
            self._refuse_unreadable(init)
            return None
        h, w = init_image.shape[:2]
        try:
            box = geometry.validate_box(init.box, w, h)
        except ValueError as exc:
            self.health.count("inits_refused")
            self.log("error", f"init ignored: {exc}", kind="init_box")
            return None
        init.box, init.size = geometry.clip_box(box, w, h), (w, h)
        return init_image, init.box

    def _apply_init(self, init: PendingInit, frame: Optional[Frame], image: Optional[np.ndarray],
                    catch_up_max: int) -> Tuple[Optional[np.ndarray], bool]:
        """Init on the frame the box was drawn on, then the catch-up (module doc). Returns
        (the box used or None when not applied, whether it was applied to `frame` itself)."""
        checked = self._init_box(init) if init.size is None else (self._image(init.frame), init.box)
        if checked is None:
            return None, False
        init_image, box = checked
        current = self.frame_size
        if current is not None and init.size != current:
            if image is None:       # wait for a frame of the current size
                with self._lock:
                    if init.target_id in self._pending_inits:
                        self.health.count("inits_coalesced")    # a newer init for the id came meanwhile
                    else:
                        self._pending_inits[init.target_id] = init
                return None, False
            sx, sy = current[0] / init.size[0], current[1] / init.size[1]
            box = geometry.clip_box(init.box * np.array([sx, sy, sx, sy]), *current)
            if not self._add_init(init.target_id, image, box):
                return None, False
            self.log("warning", f"target {init.target_id} initialised at ({', '.join(f'{v:.1f}' for v in box)}) "
                                f"on the newest frame: its box was drawn on a {init.size[0]}x{init.size[1]} frame, "
                                f"the images are now {current[0]}x{current[1]} (box scaled)")
            return box, True
        if init_image is None:      # a waiting init whose frame did not decode this time
            self._refuse_unreadable(init)
            return None, False
        if not self._add_init(init.target_id, init_image, box):
            return None, False
        self.log("info", f"target {init.target_id} initialised at ({', '.join(f'{v:.1f}' for v in box)}) "
                         f"on frame {init.frame.stamp * 1e-9:.3f}")
        if frame is not None and frame.stamp == init.frame.stamp:
            return box, True
        until = frame.stamp - 1 if frame is not None else None
        later = [f for f in self.inbox.later_frames(init.frame.stamp, until) if f.size in (None, init.size)]
        if len(later) > catch_up_max:   # evenly spaced, the newest always among them
            picks = np.linspace(len(later) - 1, 0, catch_up_max)[::-1] if catch_up_max else []
            later = [later[int(round(i))] for i in picks]
        for f in later:
            img = self._image(f)
            if img is not None and img.shape[:2] == init_image.shape[:2]:
                self._track(img, ids=[init.target_id])
        return box, False
