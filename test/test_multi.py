"""MultiTargetTracker (core/tracking/multi.py): several targets, one shared model,
one batched network call per frame; each target's results equal a run of that
target alone on the same frames (issue 6: "two and five targets ... per-target
results identical to single-target runs")."""
import glob

import cv2
import numpy as np
import pytest
import torch

from siam_tracker_ros.core.models import registry

from siam_tracker_ros.core.tracking import loading
from siam_tracker_ros.core.tracking import TrackState
from siam_tracker_ros.core.tracking.base import PreparedSearch
from siam_tracker_ros.core.tracking.batching import concat_states, slice_output, track_batch
from siam_tracker_ros.core.tracking.multi import MultiTargetTracker

BOX_TOL = 1e-4      # px
SCORE_TOL = 1e-5


def _frames(sequences_dir, name, n):
    seq = sequences_dir / name
    files = sorted(glob.glob(str(seq / "img" / "*.jpg")))[:n]
    if len(files) < n:
        pytest.skip(f"shared sequence {name} with {n} frames not found at {seq}")
    gt = np.loadtxt(seq / "groundtruth.txt", delimiter=",")
    return [cv2.imread(f) for f in files], gt[0]


@pytest.fixture(scope="module")
def crossing(sequences_dir):
    """OTB_Crossing (360x240): 9 frames and five boxes: the labelled pedestrian and
    four other places (a car, road, trees ...); every one is a target."""
    frames, gt = _frames(sequences_dir, "OTB_Crossing", 9)
    boxes = [tuple(gt), (40, 60, 50, 40), (250, 20, 60, 60), (100, 150, 30, 70), (300, 180, 40, 40)]
    return frames, boxes


class CountingModel:
    """Wraps a model and counts track() calls and their batch sizes."""

    def __init__(self, model, supports_target_batch=True):
        self.model = model
        self.calls = []
        self.supports_target_batch = supports_target_batch

    def to(self, *a, **k):
        self.model.to(*a, **k)
        return self

    def eval(self):
        self.model.eval()
        return self

    def template(self, z):
        return self.model.template(z)

    def track(self, state, x):
        self.calls.append(int(x.shape[0]))
        return self.model.track(state, x)

    def __getattr__(self, name):
        if name.startswith("__") or "model" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["model"], name)


def _builder(name, supports_target_batch=True):
    torch.manual_seed(0)
    config, model, _ = registry.load_model(name)
    shared = CountingModel(model, supports_target_batch)
    return shared, (lambda: loading.build_tracker_from_config(config, model=shared, device="cpu"))


def _single_runs(build, frames, boxes):
    out = []
    for b in boxes:
        t = build()
        t.init(frames[0], b)
        out.append([t.track(f) for f in frames[1:]])
    return out


def _assert_same(got, want, where):
    assert got.state == want.state, where
    np.testing.assert_allclose(got.box, want.box, rtol=0, atol=BOX_TOL, err_msg=str(where))
    assert abs(got.score - want.score) <= SCORE_TOL, (where, got.score, want.score)
    np.testing.assert_allclose(got.map_region, want.map_region, rtol=0, atol=BOX_TOL, err_msg=str(where))
    np.testing.assert_allclose(got.confidence_map, want.confidence_map, rtol=0, atol=SCORE_TOL,
                               err_msg=str(where))


@pytest.mark.parametrize("name,n_targets,n_frames", [
    ("default", 2, 9), ("default", 5, 9),
    ("siamfc", 2, 3),            # scale pyramid: 3 crops per target, template state repeated
    ("ta_asiam_light", 5, 4),    # anchor-based head, dict-of-lists template state
    ("siamcan_light", 2, 4),     # anchor-free, nested dict / list state
])
def test_batched_targets_equal_single_target_runs(crossing, name, n_targets, n_frames):
    frames, boxes = crossing
    frames, boxes = frames[:n_frames], boxes[:n_targets]
    shared, build = _builder(name)
    single = _single_runs(build, frames, boxes)
    crops = shared.calls[0]          # search rows per target (SiamFC: its scales)
    shared.calls.clear()

    mt = MultiTargetTracker(build)
    for i, b in enumerate(boxes):
        mt.add(10 + i, frames[0], b)
    assert mt.ids == [10 + i for i in range(len(boxes))] and len(mt) == len(boxes)
    for k, frame in enumerate(frames[1:]):
        results = mt.track(frame)
        assert list(results) == mt.ids
        for i in range(len(boxes)):
            _assert_same(results[10 + i], single[i][k], (name, i, k))
            assert {"crop", "network", "post", "total", "network_batched"} <= set(results[10 + i].timing)
    # One network call per frame, all targets' crops in it.
    assert shared.calls == [len(boxes) * crops] * (len(frames) - 1)


def test_single_target_uses_the_plain_path(crossing):
    frames, boxes = crossing
    shared, build = _builder("default")
    single = _single_runs(build, frames[:4], boxes[:1])
    mt = MultiTargetTracker(build)
    mt.add(3, frames[0], boxes[0])
    for k, frame in enumerate(frames[1:4]):
        r = mt.track(frame)[3]
        assert np.array_equal(r.box, single[0][k].box) and r.score == single[0][k].score
        assert "network_batched" not in r.timing


def test_engine_without_target_batching_runs_one_call_per_target(crossing):
    """An engine with a fixed-batch export (onnxruntime) says supports_target_batch =
    False: one call per target, same results."""
    frames, boxes = crossing
    frames = frames[:4]
    shared, build = _builder("default", supports_target_batch=False)
    single = _single_runs(build, frames, boxes[:3])
    shared.calls.clear()
    mt = MultiTargetTracker(build)
    for i, b in enumerate(boxes[:3]):
        mt.add(i, frames[0], b)
    for k, frame in enumerate(frames[1:]):
        res = mt.track(frame)
        for i in range(3):
            assert np.array_equal(res[i].box, single[i][k].box)
    assert shared.calls == [1] * (3 * (len(frames) - 1))


def test_onnx_engine_declares_no_target_batching():
    pytest.importorskip("onnxruntime")
    from siam_tracker_ros.core.engines.onnx_engine import OnnxRuntimeEngine
    assert OnnxRuntimeEngine.supports_target_batch is False


def test_add_remove_reinit_clear_and_subsets(crossing):
    frames, boxes = crossing
    shared, build = _builder("default")
    mt = MultiTargetTracker(build)
    mt.add(1, frames[0], boxes[0])
    mt.add(2, frames[0], boxes[1])
    mt.add(5, frames[0], boxes[2])
    assert mt.ids == [1, 2, 5] and 2 in mt and 3 not in mt
    r = mt.track(frames[1])
    assert set(r) == {1, 2, 5}

    # Re-init of an existing id: a fresh tracker on the new box.
    old = mt.tracker(2)
    mt.add(2, frames[1], boxes[3])
    assert mt.tracker(2) is not old
    np.testing.assert_allclose(mt.tracker(2).box, boxes[3])
    assert len(mt) == 3

    # A failed re-init keeps the target as it was.
    before = mt.tracker(5).box.copy()
    with pytest.raises(ValueError):
        mt.add(5, frames[1], (10, 10, 0, 5))
    np.testing.assert_array_equal(mt.tracker(5).box, before)

    # Subset: only those ids move; unknown ids are an error.
    b1 = mt.tracker(1).box.copy()
    shared.calls.clear()
    r = mt.track(frames[2], ids=[2, 5])
    assert set(r) == {2, 5} and shared.calls == [2]
    np.testing.assert_array_equal(mt.tracker(1).box, b1)
    with pytest.raises(KeyError):
        mt.track(frames[2], ids=[9])

    assert mt.remove(2) is True and mt.remove(2) is False
    assert mt.ids == [1, 5]
    mt.clear()
    assert mt.ids == [] and len(mt) == 0
    assert mt.track(frames[3]) == {}
    with pytest.raises(TypeError):
        mt.add(1.5, frames[0], boxes[0])
    with pytest.raises(RuntimeError):
        mt.set_supervisor_params(lost_frames=2)


class FakeSupervisor:
    """Records the calls; the test sets `searching`."""

    def __init__(self, tracker, **params):
        self.tracker = tracker
        self.params = dict(params)
        self.calls = []
        self.searching = False

    def init(self, image, box):
        self.tracker.init(image, box)

    def set_params(self, **kw):
        if "bad" in kw:
            raise ValueError("bad")
        self.params.update(kw)

    def update(self, image, raw):
        self.calls.append("update")
        raw.evidence = {"via": 1.0}
        return raw

    def search(self, image):
        self.calls.append("search")
        r = self.tracker.track(image)
        r.state = TrackState.LOST
        return r


def test_searching_targets_go_to_search_others_batched(crossing):
    frames, boxes = crossing
    shared, build = _builder("default")
    mt = MultiTargetTracker(build, supervisor_params={"a": 1}, supervisor_cls=FakeSupervisor)
    for i, b in enumerate(boxes[:4]):
        mt.add(i, frames[0], b)
    mt.supervisor(1).searching = True
    mt.supervisor(3).searching = True
    shared.calls.clear()
    res = mt.track(frames[1])
    assert [mt.supervisor(i).calls for i in range(4)] == [["update"], ["search"], ["update"], ["search"]]
    assert res[1].state == TrackState.LOST and res[0].evidence == {"via": 1.0}
    assert shared.calls == [1, 1, 2]         # 1 and 3 searched alone, then 0 and 2 batched
    mt.set_supervisor_params(x=2)
    assert all(mt.supervisor(i).params == {"a": 1, "x": 2} for i in range(4))
    with pytest.raises(ValueError):
        mt.set_supervisor_params(bad=1)
    mt.add(7, frames[0], boxes[4])
    assert mt.supervisor(7).params == {"a": 1, "x": 2}


def test_supervised_targets_equal_per_target_supervisor_runs(crossing):
    """With the real TargetSupervisor: mt.track == sup.step per target, on the
    TRACKING path and, once a target is LOST, on the search path."""
    from siam_tracker_ros.core.tracking import monitor
    frames, boxes = crossing
    frames = frames[:6]
    shared, build = _builder("default")
    # Target 1 runs with the defaults on frame 1, then any movement makes its frames
    # very bad (jump_free 0, jump_lost 1e-6, very_bad 1), so it goes LOST and from
    # then on runs the search; the other targets keep the defaults.
    lost_now = dict(jump_free=0.0, jump_lost=1e-6, very_bad=1.0, search_tiles=2)
    per_target = []
    for i, b in enumerate(boxes[:3]):
        sup = monitor.TargetSupervisor(build())
        sup.init(frames[0], b)
        runs = []
        for k, f in enumerate(frames[1:]):
            if k == 1 and i == 1:
                sup.set_params(**lost_now)
            runs.append(sup.step(f))
        per_target.append(runs)
    assert any(r.state == TrackState.LOST for r in per_target[1])
    assert any(r.evidence.get("search_tiles", 0) > 0 for r in per_target[1])   # the search path ran

    mt = MultiTargetTracker(build, supervisor_params={})
    for i, b in enumerate(boxes[:3]):
        mt.add(i, frames[0], b)
    for k, frame in enumerate(frames[1:]):
        if k == 1:
            mt.supervisor(1).set_params(**lost_now)
        res = mt.track(frame)
        for i in range(3):
            _assert_same(res[i], per_target[i][k], (i, k))
            assert set(res[i].evidence) == set(per_target[i][k].evidence)
            for key, v in per_target[i][k].evidence.items():
                assert res[i].evidence[key] == pytest.approx(v, abs=1e-6, nan_ok=True), (i, k, key)
    with pytest.raises(ValueError):
        mt.set_supervisor_params(lost_frames=0)
    mt.set_supervisor_params(lost_frames=4)
    assert all(mt.supervisor(i).params["lost_frames"] == 4 for i in range(3))


# ---- one failing target does not fail the frame ------------------------------------------
class TargetFault(RuntimeError):
    pass


def _fail_on(frame_no, counter, fn, what):
    """fn, except that its call during frame `frame_no` (counter[0], 1-based) raises."""
    def wrapped(*a, **k):
        if counter[0] == frame_no:
            raise TargetFault(what)
        return fn(*a, **k)
    return wrapped


def _count_finishes(mt, sink):
    """Wrap every tracker's track_finish so that each call appends the target's id to `sink`."""
    for i in mt.ids:
        t = mt.tracker(i)

        def counted(*a, _i=i, _finish=t.track_finish, **k):
            sink.append(_i)
            return _finish(*a, **k)
        t.track_finish = counted


def _reference(build, frames, boxes, ids):
    """The same frames tracked with only `ids` (the run without the failing target)."""
    mt = MultiTargetTracker(build, supervisor_params={}, supervisor_cls=FakeSupervisor)
    for i in ids:
        mt.add(i, frames[0], boxes[i])
    return [mt.track(f) for f in frames[1:]]


@pytest.mark.parametrize("where", ["track_prepare", "track_finish", "search", "update"])
def test_a_failing_target_leaves_the_others_as_without_it(crossing, where):
    """Target 1 of 3 raises on frame 2 in one place of its work: left out of that frame's
    result, its exception in mt.errors; targets 0 and 2 get exactly the results of a run
    without target 1; the next frame, target 1 (still in the tracker) is tracked again."""
    frames, boxes = crossing
    frames = frames[:5]
    shared, build = _builder("default")
    want = _reference(build, frames, boxes, [0, 2])
    mt = MultiTargetTracker(build, supervisor_params={}, supervisor_cls=FakeSupervisor)
    for i in range(3):
        mt.add(i, frames[0], boxes[i])
    frame_no = [0]
    if where in ("track_prepare", "track_finish"):
        obj = mt.tracker(1)
    else:
        obj = mt.supervisor(1)
        obj.searching = where == "search"
    setattr(obj, where, _fail_on(2, frame_no, getattr(obj, where), f"{where} broke"))
    finishes = []
    _count_finishes(mt, finishes)
    for k, frame in enumerate(frames[1:]):
        frame_no[0] = k + 1
        shared.calls.clear()
        res = mt.track(frame)
        if frame_no[0] == 2:
            assert list(res) == [0, 2] and list(mt.errors) == [1]
            assert isinstance(mt.errors[1], TargetFault) and str(mt.errors[1]) == f"{where} broke"
            # one batched call still: with target 1's crop when it failed after its crop
            assert shared.calls[-1] == (3 if where in ("track_finish", "update") else 2)
        else:
            assert list(res) == [0, 1, 2] and mt.errors == {}
        for i in (0, 2):
            _assert_same(res[i], want[k][i], (where, i, k))
    assert mt.ids == [0, 1, 2]                     # the failed target stays (the caller decides)
    # no target finished twice on a frame (a searching target runs track(), not track_finish)
    n = len(frames) - 1
    assert finishes.count(0) == finishes.count(2) == n
    assert finishes.count(1) == {"track_prepare": n - 1, "track_finish": n, "search": 0, "update": n}[where]


class PoisonModel(CountingModel):
    """Raises on any call whose search crops include an all -1 crop (the culprit's)."""

    def track(self, state, x):
        self.calls.append(int(x.shape[0]))
        if bool((x == -1).flatten(1).all(1).any()):
            raise TargetFault("poisoned crop")
        return self.model.track(state, x)


@pytest.mark.parametrize("poison", ["template_state", "crop"])
def test_a_failing_batched_network_call_is_retried_per_target(crossing, poison):
    """The batched call raises because of target 1 (a template state of the wrong shape:
    the states cannot be batched and the model refuses it alone; or a crop the model
    refuses): the network runs again per target, only target 1 fails, 0 and 2 are as
    without it, and each is finished once per frame."""
    frames, boxes = crossing
    frames = frames[:4]
    torch.manual_seed(0)
    config, model, _ = registry.load_model("default")
    shared = PoisonModel(model)

    def build():
        return loading.build_tracker_from_config(config, model=shared, device="cpu")
    ref = MultiTargetTracker(build)
    for i in (0, 2):
        ref.add(i, frames[0], boxes[i])
    want = [ref.track(f) for f in frames[1:]]

    mt = MultiTargetTracker(build)
    for i in range(3):
        mt.add(i, frames[0], boxes[i])
    culprit = mt.tracker(1)
    if poison == "template_state":
        culprit.template_state = tuple(s[:, :, :4, :4].clone() for s in culprit.template_state)
    else:
        prepare = culprit.track_prepare

        def poisoned_prepare(image):
            p = prepare(image)
            return PreparedSearch(torch.full_like(p.x, -1.0), p.context, p.crop_time)
        culprit.track_prepare = poisoned_prepare
    finishes = []
    _count_finishes(mt, finishes)
    for k, frame in enumerate(frames[1:]):
        shared.calls.clear()
        finishes.clear()
        res = mt.track(frame)
        assert list(res) == [0, 2] and list(mt.errors) == [1]
        assert finishes == [0, 2]
        # template_state: the states do not concatenate (no batched call), then one call each;
        # crop: the batched call of 3 raises, then one call each
        assert shared.calls == ([1, 1, 1] if poison == "template_state" else [3, 1, 1, 1])
        for i in (0, 2):
            _assert_same(res[i], want[k][i], (poison, i, k))
            assert "network_batched" not in res[i].timing
    if poison == "crop":
        assert str(mt.errors[1]) == "poisoned crop"


def test_track_batch_raises_without_errors_and_skips_with(crossing):
    """track_batch keeps raising when called without `errors`; with it, the failing index is
    reported and the others are returned. A lone target (the plain track() path) too."""
    frames, boxes = crossing
    shared, build = _builder("default")
    trackers = []
    for b in boxes[:3]:
        t = build()
        t.init(frames[0], b)
        trackers.append(t)
    bad = trackers[2]

    def boom(image):
        raise TargetFault("no crop")
    bad.track_prepare = boom
    with pytest.raises(TargetFault):
        track_batch(trackers, frames[1])
    errors = {}
    out = track_batch(trackers, frames[1], errors=errors)
    assert out[2] is None and list(errors) == [2] and all(r is not None for r in out[:2])

    mt = MultiTargetTracker(build)
    mt.add(4, frames[0], boxes[0])
    mt.tracker(4).track = boom
    assert mt.track(frames[1]) == {} and isinstance(mt.errors[4], TargetFault)
    del mt.tracker(4).track                       # works again: errors reset on the next frame
    assert list(mt.track(frames[2])) == [4] and mt.errors == {}


def test_concat_states_and_slice_output():
    a = (torch.ones(1, 2, 3), {"k": [torch.zeros(1, 4), None]})
    b = (torch.full((1, 2, 3), 2.0), {"k": [torch.ones(1, 4), None]})
    s = concat_states([a, b], [1, 3])            # b has 3 search crops: repeated
    assert s[0].shape == (4, 2, 3) and s[1]["k"][0].shape == (4, 4) and s[1]["k"][1] is None
    assert torch.equal(s[0][1:], torch.full((3, 2, 3), 2.0)) and torch.equal(s[0][0], torch.ones(2, 3))
    n = concat_states([(np.ones((1, 2)),), (np.zeros((2, 2)),)], [2, 2])
    assert n[0].shape == (4, 2) and n[0][:2].sum() == 4 and n[0][2:].sum() == 0
    with pytest.raises(ValueError):
        concat_states([torch.ones(2, 3), torch.ones(1, 3)], [3, 1])
    with pytest.raises(ValueError):
        concat_states([None, torch.ones(1)], [1, 1])
    out = {"cls": torch.arange(10).reshape(5, 2), "scale": 3.0, "w": torch.ones(2)}
    part = slice_output(out, 1, 3, 5)
    assert torch.equal(part["cls"], torch.tensor([[2, 3], [4, 5]])) and part["scale"] == 3.0
    assert part["w"].shape == (2,)


def test_multi_target_bench_harness():
    """siam-bench --targets: both paths run on the same frames and agree (no timing checks)."""
    from siam_tracker_ros.evaluation import multi_speed
    boxes = multi_speed.target_boxes((100, 50, 40, 30), (320, 240), 5)
    assert len(boxes) == 5 and np.array_equal(boxes[0], [100, 50, 40, 30])
    for b in boxes:
        assert 0 <= b[0] and b[0] + b[2] <= 320 and 0 <= b[1] and b[1] + b[3] <= 240
    assert len({tuple(b) for b in boxes}) == 5
    res = multi_speed.run_multi_job(multi_speed.MultiJob("default", 2, frames=3, warmup=1))
    assert res.ok, res.reason
    assert res.frames == 3 and res.max_box_diff <= BOX_TOL
    assert res.batched_ms["median"] > 0 and res.sequential_ms["median"] > 0
    assert "targets=2" not in multi_speed.markdown_table([res]) and "| default | cpu | 1 | 2 |" in \
        multi_speed.markdown_table([res])
