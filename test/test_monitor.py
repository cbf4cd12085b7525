"""Target supervisor (core/tracking/monitor.py): evidence on drawn maps and the
TRACKING / LOST state machine on a scripted world (no network, no data)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from siam_tracker_ros.core.tracking.base import Tracker, TrackResult, TrackState
from siam_tracker_ros.core.tracking.evidence import box_change, normalized_entropy, peak_to_sidelobe
from siam_tracker_ros.core.tracking.monitor import TargetSupervisor
from siam_tracker_ros.core.tracking.params import SUPERVISOR_DEFAULTS
from siam_tracker_ros.core.tracking.params import validate_supervisor_params as validate_params
from siam_tracker_ros.core.tracking.search import ring_tiles, rings_to_cover

S = 16          # score map size of the scripted tracker


# --------------------------------------------------------------------------- evidence
def gaussian_map(size=S, at=(8, 8), sigma=1.0, floor=0.0):
    ys, xs = np.mgrid[0:size, 0:size]
    m = np.exp(-((xs - at[0]) ** 2 + (ys - at[1]) ** 2) / (2 * sigma ** 2))
    return (floor + (1 - floor) * m).astype(np.float32)


def test_entropy_flat_spike_and_widths():
    assert normalized_entropy(np.ones((S, S))) == pytest.approx(1.0)
    spike = np.zeros((S, S))
    spike[3, 5] = 1.0
    assert normalized_entropy(spike) == pytest.approx(0.0)
    narrow, wide = gaussian_map(sigma=1.0), gaussian_map(sigma=4.0)
    assert 0.0 < normalized_entropy(narrow) < normalized_entropy(wide) < 1.0
    # negative values do not count; an all-zero map is "flat"
    assert normalized_entropy(-np.ones((S, S))) == pytest.approx(1.0)
    assert normalized_entropy(narrow - 2.0 * (narrow < 0.5)) == pytest.approx(
        normalized_entropy(narrow * (narrow >= 0.5)))


def test_psr_peak_against_sidelobes():
    flat = np.full((S, S), 0.3)
    assert peak_to_sidelobe(flat) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.0, 0.1, (S, S))
    peaked = noise.copy()
    peaked[8, 8] = 1.0
    # r = S // 8 = 2: the 5x5 square around the peak is not sidelobe
    mask = np.ones((S, S), bool)
    mask[6:11, 6:11] = False
    expected = (1.0 - peaked[mask].mean()) / (peaked[mask].std() + 1e-6)
    assert peak_to_sidelobe(peaked) == pytest.approx(expected, rel=1e-6)
    assert peak_to_sidelobe(noise) < 5 and peak_to_sidelobe(peaked) > 25
    two = gaussian_map(sigma=1.0) + gaussian_map(at=(2, 2), sigma=1.0)
    assert peak_to_sidelobe(two) < peak_to_sidelobe(gaussian_map(sigma=1.0))
    with pytest.raises(ValueError):
        peak_to_sidelobe(np.zeros(5))


def test_box_change_in_box_sizes():
    jump, size = box_change([0, 0, 10, 10], [10, 0, 10, 10])
    assert jump == pytest.approx(1.0) and size == pytest.approx(0.0)
    jump, size = box_change([0, 0, 10, 10], [-5, -5, 20, 20])
    assert jump == pytest.approx(0.0) and size == pytest.approx(math.log(2.0))


def test_rings_cover_the_frame():
    tiles = ring_tiles((320, 240), 100.0, 1, (640, 480))
    assert len(tiles) == 8
    assert all(max(abs(t[0] - 320), abs(t[1] - 240)) == pytest.approx(100.0) for t in tiles)
    n = rings_to_cover((320, 240), 100.0, (640, 480))
    corners = {(0.0, 0.0), (640.0, 0.0), (0.0, 480.0), (640.0, 480.0)}
    seen = {tuple(t) for r in range(n + 1) for t in ring_tiles((320, 240), 100.0, r, (640, 480))}
    assert corners <= seen           # the outer ring, clamped into the image, reaches the corners


# --------------------------------------------------------------------------- a scripted world
class World:
    """Where the target is (None = absent) and how it looks this frame."""
    def __init__(self, pos=(320.0, 240.0), size=(40.0, 40.0)):
        self.pos = None if pos is None else np.array(pos, float)
        self.size = np.array(size, float)
        self.lookalike = None        # a second target-like thing (np.array) or None
        self.blur = False            # the target is visible but looks poor this frame


class ScriptedTracker(Tracker):
    """A tracker whose search crop 'sees' the World: a sharp peak where the target is
    (inside the crop), a diffuse map when it is not; it follows the best peak like a
    Siamese tracker (and drifts to a random place when nothing is there)."""
    DEFAULTS = dict(exemplar_size=127, instance_size=255, context_amount=0.5)

    def __init__(self, world: World, seed: int = 0):
        super().__init__(torch.nn.Identity(), {}, device="cpu")
        # Only _track is scripted: the supervisor's probes must take one crop at a
        # time (Tracker.probe's per-crop path), not batch the crops.
        self.model.supports_target_batch = False
        self.world = world
        self.rng = np.random.default_rng(seed)
        self.crops = 0

    def _init(self, image):
        self.template_state = "template"

    # The three-step hooks of Tracker (batched path) are not used here: _track is
    # the whole frame.
    def _prepare_search(self, image):
        raise NotImplementedError

    def _decode(self, out):
        raise NotImplementedError

    def _finish(self, raw, ctx):
        raise NotImplementedError

    def _side(self):
        w, h = self.size
        pad = 0.5 * (w + h)
        return math.sqrt((w + pad) * (h + pad)) * 255 / 127

    def _track(self, image):
        self.crops += 1
        side = self._side()
        cell = side / S
        origin = self.center - side / 2
        targets = [self.world.pos] if self.world.pos is not None else []
        if self.world.lookalike is not None:
            targets.append(self.world.lookalike)
        seen = [t for t in targets if np.all(np.abs(t - self.center) < side / 2 - cell)]
        if seen and not self.world.blur:
            t = min(seen, key=lambda q: np.linalg.norm(q - self.center))
            at = (t - origin) / cell
            cmap = gaussian_map(at=at, sigma=1.0, floor=0.02) * 0.99
            score = 0.99
            self.center = t.copy()
        else:
            cmap = (0.3 + 0.2 * self.rng.random((S, S))).astype(np.float32)
            score = 0.6
            self.center = self.center + self.rng.normal(0, 0.6, 2) * self.size
        return TrackResult(box=self.box, score=score, state=TrackState.TRACKING, confidence_map=cmap,
                           map_region=np.array([origin[0], origin[1], side, side]))


IMAGE = np.zeros((480, 640, 3), np.uint8)


def start(world=None, **params):
    world = world or World()
    trk = ScriptedTracker(world)
    sup = TargetSupervisor(trk, **params)
    box = np.r_[world.pos - world.size / 2, world.size]
    sup.init(IMAGE, box)
    return sup, trk, world


def run(sup, n):
    return [sup.step(IMAGE) for _ in range(n)]


def test_visible_target_stays_tracking_with_evidence():
    sup, trk, world = start()
    results = []
    for i in range(30):
        world.pos = world.pos + np.array([3.0, 1.0])       # slow motion
        results.append(sup.step(IMAGE))
    assert all(r.state == TrackState.TRACKING for r in results)
    assert not sup.searching and sup.state == TrackState.TRACKING
    ev = results[-1].evidence
    for key in ("score", "psr", "entropy", "jump", "size_change", "entropy_rise", "logit_drop", "badness",
                "bad", "lost_count", "state"):
        assert key in ev, key
    assert ev["bad"] == 0.0 and ev["badness"] < 1.0
    assert np.linalg.norm(trk.center - world.pos) < 1.0


def test_lost_after_k_consecutive_bad_frames():
    sup, trk, world = start(lost_frames=3, very_bad=1000.0, persist_lost=1000.0)
    run(sup, 10)
    world.pos = None
    states = [r.state for r in run(sup, 5)]
    assert states[:2] == [TrackState.TRACKING] * 2
    assert states[2:] == [TrackState.LOST] * 3
    assert sup.searching


def test_persistent_moderate_evidence_adds_up():
    """CUSUM: frames each below 'bad' but above persist_drift make the target LOST."""
    sup, trk, world = start(lost_frames=3, very_bad=1000.0, persist_drift=0.5, persist_lost=1.5)
    run(sup, 10)
    ent_level = sup.levels.ent_level

    def moderate(image):
        # entropy 0.8 of the way to 'bad' (badness ~ 0.8 < 1): not a bad frame alone
        target = ent_level + 0.8 * sup.entropy_threshold()
        best = None
        for sigma in np.linspace(0.5, 8.0, 300):
            m = gaussian_map(sigma=sigma, floor=0.02)
            e = normalized_entropy(m)
            if best is None or abs(e - target) < abs(best[0] - target):
                best = (e, m)
        return TrackResult(trk.box, 0.99, TrackState.TRACKING, best[1], np.zeros(4))

    states, persistence = [], []
    for _ in range(6):
        r = sup.update(IMAGE, moderate(IMAGE))
        assert r.evidence["bad"] == 0.0 and 0.6 < r.evidence["badness"] < 1.0
        states.append(r.state)
        persistence.append(r.evidence["persistence"])
        if r.state == TrackState.LOST:
            break
    assert states[-1] == TrackState.LOST and len(states) in (4, 5, 6), (states, persistence)
    rising = persistence[:-1]           # (it starts again from 0 once LOST)
    assert rising[0] > 0 and all(b > a for a, b in zip(rising[:-1], rising[1:]))


def test_one_very_bad_frame_is_enough():
    sup, trk, world = start(lost_frames=3, very_bad=1.0)
    run(sup, 10)
    world.pos = None
    assert sup.step(IMAGE).state == TrackState.LOST


def test_isolated_bad_frames_do_not_lose_and_do_not_move_the_tracker():
    sup, trk, world = start(lost_frames=3, very_bad=1000.0, persist_lost=1000.0)
    run(sup, 10)
    before = trk.center.copy()
    for _ in range(5):
        world.blur = True
        r = sup.step(IMAGE)
        assert r.state == TrackState.TRACKING and r.evidence["bad"] == 1.0
        # hold_on_bad: the tracker's state is the last good frame's again
        assert np.allclose(trk.center, before)
        world.blur = False
        r = sup.step(IMAGE)
        assert r.state == TrackState.TRACKING and r.evidence["bad"] == 0.0


def test_hold_on_bad_off_lets_the_tracker_move():
    sup, trk, world = start(lost_frames=3, very_bad=1000.0, persist_lost=1000.0, hold_on_bad=False)
    run(sup, 10)
    before = trk.center.copy()
    world.blur = True
    sup.step(IMAGE)
    assert not np.allclose(trk.center, before)


def test_reacquires_after_return_in_place_after_recover_frames():
    sup, trk, world = start(recover_frames=3)
    run(sup, 10)
    last = world.pos.copy()
    world.pos = None
    absent = run(sup, 15)
    assert absent[-1].state == TrackState.LOST
    assert all(r.state == TrackState.LOST for r in absent[3:])      # nothing to find: stays LOST
    world.pos = last + np.array([10.0, 0.0])
    back = run(sup, 4)
    assert [r.state for r in back] == [TrackState.LOST, TrackState.LOST, TrackState.TRACKING, TrackState.TRACKING]
    assert np.linalg.norm(trk.center - world.pos) < 1.0
    assert back[2].evidence["search_tiles"] >= 2


def test_search_widens_ring_by_ring_and_finds_a_far_target():
    sup, trk, world = start(search_tiles=8, recover_frames=1, search_reach_rate=1.0)
    run(sup, 10)
    world.pos = None
    lost = run(sup, 3)
    rings = [r.evidence["search_ring"] for r in lost if r.state == TrackState.LOST]
    assert rings == sorted(rings) and rings[-1] > rings[0]
    world.pos = np.array([600.0, 440.0])                  # far corner, several rings out
    found = None
    for i in range(40):
        r = sup.step(IMAGE)
        if r.state == TrackState.TRACKING:
            found = i
            break
    assert found is not None, "the search never reached the far corner"
    assert np.linalg.norm(trk.center - world.pos) < 1.0


def test_far_lookalike_is_not_taken_right_after_the_loss():
    """search_distance_cost: a candidate far outside the reach is not accepted at once."""
    sup, trk, world = start(search_tiles=40, recover_frames=1)
    run(sup, 10)
    world.pos = None
    run(sup, 3)
    world.lookalike = np.array([600.0, 440.0])
    r = sup.step(IMAGE)
    assert r.state == TrackState.LOST
    assert r.evidence["distance_cost"] > 0.0


def test_search_does_not_change_the_tracker_until_reacquired():
    sup, trk, world = start()
    run(sup, 10)
    world.pos = None
    run(sup, 4)
    assert sup.searching
    before = trk.save_state()
    sup.step(IMAGE)
    after = trk.save_state()
    for k in ("center", "size"):
        assert np.allclose(before[k], after[k])


def test_save_load_state_roundtrip():
    sup, trk, world = start()
    snap = trk.save_state()
    trk.center = trk.center + 50
    trk.size = trk.size * 2
    trk.load_state(snap)
    assert np.allclose(trk.center, snap["center"]) and np.allclose(trk.size, snap["size"])
    trk.center += 1.0                       # in place: the snapshot must not change
    assert not np.allclose(trk.center, snap["center"])


def test_set_params_validates_and_applies():
    sup, trk, world = start()
    sup.set_params(lost_frames=5, recover_below="0.4", hold_on_bad="false")
    assert sup.params["lost_frames"] == 5 and sup.params["recover_below"] == 0.4
    assert sup.params["hold_on_bad"] is False
    for bad in ({"lost_frames": 0}, {"lost_frames": 2.5}, {"recover_below": -1}, {"very_bad": 0.5},
                {"no_such": 1}, {"entropy_gap_fraction": float("nan")}, {"hold_on_bad": "maybe"}):
        with pytest.raises(ValueError):
            sup.set_params(**bad)
    with pytest.raises(ValueError):
        sup.set_params(lost_frames=7, recover_frames=-1)      # all or nothing
    assert sup.params["lost_frames"] == 5
    assert validate_params(dict(SUPERVISOR_DEFAULTS)) == SUPERVISOR_DEFAULTS
    with pytest.raises(ValueError):
        TargetSupervisor(ScriptedTracker(World()), lost_frames=-3)


def test_api_order_errors_and_reset():
    trk = ScriptedTracker(World())
    sup = TargetSupervisor(trk)
    assert sup.state == TrackState.IDLE and not sup.searching
    with pytest.raises(RuntimeError):
        sup.update(IMAGE, None)
    sup, trk, world = start()
    with pytest.raises(RuntimeError):
        sup.search(IMAGE)
    world.pos = None
    run(sup, 10)
    assert sup.searching
    with pytest.raises(RuntimeError):
        sup.update(IMAGE, trk.track(IMAGE))
    sup.reset()
    assert sup.state == TrackState.IDLE and not trk.initialized


def test_levels_are_relative_to_the_target():
    """The same absolute score means different things for different targets: a
    tracker whose score sits at 0.6 on its target is not LOST for that alone."""
    sup, trk, world = start()
    run(sup, 10)
    assert sup.evidence(TrackResult(np.array([300, 220, 40, 40.]), 0.6, TrackState.TRACKING,
                                    (0.3 + 0.2 * np.random.default_rng(1).random((S, S))).astype(np.float32),
                                    np.zeros(4)), None)["badness"] >= 1.0
    ev_good = run(sup, 1)[0].evidence
    assert ev_good["badness"] < 1.0 and ev_good["score_level"] == pytest.approx(0.99, abs=1e-3)


def test_motion_prior_coasts_on_bad_frames_and_moves_the_search():
    sup, trk, world = start(motion_prior=True, lost_frames=3, very_bad=1000.0, persist_lost=1000.0)
    for _ in range(15):
        world.pos = world.pos + np.array([6.0, 0.0])
        sup.step(IMAGE)
    last = trk.center.copy()
    world.pos = None
    r = sup.step(IMAGE)
    assert r.evidence["bad"] == 1.0 and r.state == TrackState.TRACKING
    assert np.allclose(trk.center, last + np.array([6.0, 0.0]), atol=0.5)     # coasted, not held
    sup.step(IMAGE)
    assert np.allclose(trk.center, last + np.array([12.0, 0.0]), atol=1.0)
    # off (the default): held at the last good centre
    sup2, trk2, world2 = start(lost_frames=3, very_bad=1000.0, persist_lost=1000.0)
    for _ in range(15):
        world2.pos = world2.pos + np.array([6.0, 0.0])
        sup2.step(IMAGE)
    last2 = trk2.center.copy()
    world2.pos = None
    sup2.step(IMAGE)
    assert np.allclose(trk2.center, last2)


# --------------------------------------------------------------------------- batched search crops
@pytest.mark.parametrize("name", ["default", "siamfc", "ta_asiam_light"])
def test_search_crops_in_one_network_call_equal_one_crop_at_a_time(name):
    """A LOST target's search crops go through the network in one call
    (Tracker.probe); each result must be the one crop-at-a-time probe gives, for the
    three tracker families (anchor-free, SiamFC's 3-scale pyramid, anchor-based RPN),
    and the tracker must be left in its state."""
    import cv2
    from siam_tracker_ros.core.tracking.batching import supports_target_batch
    from siam_tracker_ros.core.tracking.loading import build_tracker
    torch.manual_seed(0)
    trk = build_tracker(name, device="cpu", allow_untrained=True)
    assert supports_target_batch(trk.model)          # else the batched path is not under test
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    trk.init(image, [140, 100, 40, 30])
    snap = trk.save_state()
    centers = [np.array([160.0, 115.0]), np.array([60.0, 50.0]), np.array([300.0, 230.0])]
    batched = trk.probe(image, centers)
    alone = [trk.probe(image, [c])[0] for c in centers]
    assert len(batched) == len(centers)
    for b, a in zip(batched, alone):
        np.testing.assert_allclose(b.box, a.box, atol=1e-4)
        assert abs(b.score - a.score) <= 1e-5
        np.testing.assert_allclose(b.confidence_map, a.confidence_map, atol=1e-5)
    assert not np.allclose(batched[0].box, batched[1].box)   # the crops differ: not one result copied
    np.testing.assert_array_equal(trk.center, snap["center"])
    np.testing.assert_array_equal(trk.size, snap["size"])


# --------------------------------------------------------------------------- colour evidence
def test_colour_histogram_and_similarity():
    from siam_tracker_ros.core.tracking.evidence import colour_histogram, colour_similarity
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = (0, 0, 220)          # red left half (BGR)
    image[:, 80:] = (220, 60, 0)         # blue right half
    red_a, red_b = colour_histogram(image, [10, 10, 40, 40]), colour_histogram(image, [20, 60, 30, 30])
    blue = colour_histogram(image, [100, 20, 40, 40])
    assert red_a is not None and abs(red_a.sum() - 1.0) < 1e-6
    assert colour_similarity(red_a, red_b) > 0.99
    assert colour_similarity(red_a, blue) < 0.05
    assert colour_histogram(np.full((120, 160, 3), 90, np.uint8), [10, 10, 40, 40]) is None   # grey: no colour
    assert colour_histogram(image, [10, 10, 1, 1]) is None                                  # too small
    assert math.isnan(colour_similarity(None, red_a))
    big = np.zeros((2000, 2000, 3), np.uint8)
    big[..., 2] = 200
    assert colour_similarity(colour_histogram(big, [0, 0, 2000, 2000]), red_a) > 0.99    # resized first


def _coloured_supervisor(**params):
    """A supervisor on a real-shaped evidence path: init box on a red square in a
    blue frame (the scripted tracker's maps; colours from the image)."""
    world = World()
    image = np.zeros((480, 640, 3), np.uint8)
    image[:] = (200, 80, 0)
    x, y = (world.pos - world.size / 2).astype(int)
    w, h = world.size.astype(int)
    image[y:y + h, x:x + w] = (0, 0, 220)
    trk = ScriptedTracker(world)
    sup = TargetSupervisor(trk, **params)
    sup.init(image, np.r_[world.pos - world.size / 2, world.size])
    for _ in range(6):                   # warm levels (colour, entropy, score)
        sup.step(image)
    return sup, image, world


def test_matching_colours_discount_the_models_evidence_not_the_jumps():
    sup, image, world = _coloured_supervisor()
    box = np.r_[world.pos - world.size / 2, world.size]
    ambiguous = TrackResult(box=box, score=0.2, state=TrackState.TRACKING,
                            confidence_map=np.full((S, S), 0.3, np.float32), map_region=np.zeros(4))
    on_target = sup.evidence(ambiguous, box, image=image)
    off_box = box + np.array([200, 0, 0, 0])            # same map and score, box on the blue
    off_target = sup.evidence(TrackResult(box=off_box, score=0.2, state=TrackState.TRACKING,
                                          confidence_map=ambiguous.confidence_map, map_region=np.zeros(4)),
                              off_box, image=image)
    p = sup.params
    assert on_target["colour_drop"] < p["colour_keep"] and on_target["map_weight"] == pytest.approx(p["colour_map_weight"])
    assert off_target["colour_drop"] > 0.5 and off_target["map_weight"] == 1.0
    model_terms = (on_target["entropy_rise"] / on_target["entropy_threshold"]
                   + max(0.0, on_target["logit_drop"]) / p["logit_drop_lost"] + 1.0)     # + score floor
    assert on_target["badness"] == pytest.approx(p["colour_map_weight"] * model_terms)
    # A jump is not discounted by matching colours.
    jumped = sup.evidence(ambiguous, box - np.array([40, 0, 0, 0]), image=image)
    assert jumped["badness"] == pytest.approx(on_target["badness"] + (jumped["jump"] - p["jump_free"]) / p["jump_lost"])
    # colour_map_weight 1.0 switches the discount off.
    sup.set_params(colour_map_weight=1.0)
    assert sup.evidence(ambiguous, box, image=image)["badness"] == pytest.approx(model_terms)


def test_search_candidates_pay_for_other_colours():
    sup, image, world = _coloured_supervisor()
    box = np.r_[world.pos - world.size / 2, world.size]
    sharp = gaussian_map(at=(8, 8), sigma=1.0, floor=0.02) * 0.99
    same = sup.evidence(TrackResult(box=box, score=0.99, state=TrackState.TRACKING, confidence_map=sharp,
                                    map_region=np.zeros(4)), None, image=image, searching=True)
    other_box = box + np.array([200, 0, 0, 0])
    other = sup.evidence(TrackResult(box=other_box, score=0.99, state=TrackState.TRACKING, confidence_map=sharp,
                                     map_region=np.zeros(4)), None, image=image, searching=True)
    p = sup.params
    assert same["colour_term"] == 0.0 and same["map_weight"] == 1.0     # no discount while searching
    assert other["colour_term"] == pytest.approx((other["colour_drop"] - p["colour_free"]) / p["colour_lost"])
    assert other["badness"] > p["recover_relaxed_below"] > p["recover_below"] >= same["badness"]


def test_grey_images_leave_the_colour_out():
    sup, trk, world = start()                # the scripted world's image is black (grey)
    run(sup, 6)
    box = np.r_[world.pos - world.size / 2, world.size]
    ev = sup.evidence(TrackResult(box=box, score=0.2, state=TrackState.TRACKING,
                                  confidence_map=np.full((S, S), 0.3, np.float32), map_region=np.zeros(4)),
                      box, image=IMAGE)
    assert math.isnan(ev["colour"]) and ev["map_weight"] == 1.0 and ev["colour_term"] == 0.0
