"""Every augmentation moves the box with the image.

A filled rectangle of a unique colour is drawn at the box on a random (dark,
noisy) background; after the augmentation the returned box must match the
bounding box of that colour's pixels within 1-2 px. A pixel belongs to the
object when it is nearer to the object's colour (read at the box centre after
the transform) than to the background's mean colour, which also locates the
edges of blurred rectangles (the 50 % level of a symmetric kernel is the edge).
"""
import numpy as np
import pytest

from siam_tracker_ros.core.geometry import crop_and_resize
from siam_tracker_ros.train import augment as A

OBJ = np.array([40, 230, 250], np.uint8)  # BGR: a yellow no background pixel has


def scene(seed, size=(240, 320), box=None):
    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    if box is None:
        bw, bh = rng.uniform(20, 80), rng.uniform(20, 80)
        box = np.array([rng.uniform(20, w - bw - 20), rng.uniform(20, h - bh - 20), bw, bh])
    x0, y0 = int(round(box[0])), int(round(box[1]))
    x1, y1 = int(round(box[0] + box[2])), int(round(box[1] + box[3]))
    img[y0:y1, x0:x1] = OBJ
    return img, np.array([x0, y0, x1 - x0, y1 - y0], float), rng


def object_bbox(img, box, background):
    """xyxy bounding box of the pixels nearer to the object colour than to the background."""
    cx = int(np.clip(box[0] + box[2] / 2, 0, img.shape[1] - 1))
    cy = int(np.clip(box[1] + box[3] / 2, 0, img.shape[0] - 1))
    obj = img[cy, cx].astype(float)
    f = img.astype(float)
    d_obj = np.linalg.norm(f - obj, axis=-1)
    d_bg = np.linalg.norm(f - np.asarray(background, float), axis=-1)
    ys, xs = np.nonzero(d_obj < d_bg)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def xyxy(b):
    return np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])


def check(img, box, background, atol=1.5):
    """The object's pixels match the box (clipped to the image: a shifted box may leave it)."""
    h, w = img.shape[:2]
    expected = np.clip(xyxy(box), 0, [w, h, w, h])
    np.testing.assert_allclose(object_bbox(img, box, background), expected, atol=atol)


BG = (40, 40, 40)
SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_crop_jitter_shift_scale(seed):
    img, box, rng = scene(seed)
    region = 2.0 * max(box[2], box[3]) + 40
    out, b = A.crop_jitter(img, box, 255, region, rng, max_shift=64, max_scale=0.18)
    assert out.shape == (255, 255, 3)
    check(out, b, BG)


@pytest.mark.parametrize("seed", SEEDS)
def test_crop_jitter_anisotropic(seed):
    img, box, rng = scene(seed)
    region = 2.0 * max(box[2], box[3]) + 40
    out, b = A.crop_jitter(img, box, 255, region, rng, max_shift=64, max_scale=0.30, anisotropic=True)
    check(out, b, BG)


def test_warp_crop_matches_core_crop():
    img, box, _ = scene(0)
    a = A.warp_crop(img, (100.3, 80.7), (90.0, 90.0), 127)
    b = crop_and_resize(img, (100.3, 80.7), 90.0, 127)
    assert np.array_equal(a, b)
    # and the anisotropic path agrees with the isotropic one for equal sides (up to rounding)
    c = A.warp_crop(img, (100.3, 80.7), (90.0, 90.0 + 1e-7), 127)
    assert np.abs(c.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("seed", SEEDS)
def test_shift_scale(seed):
    img, box, rng = scene(seed)
    out, b = A.shift_scale(img, box, rng, max_shift=64, max_scale=0.18)
    assert out.shape == img.shape
    check(out, b, BG)


@pytest.mark.parametrize("seed", SEEDS)
def test_shift_scale_anisotropic(seed):
    img, box, rng = scene(seed)
    out, b = A.shift_scale(img, box, rng, max_shift=64, max_scale=0.30, anisotropic=True)
    check(out, b, BG)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotate90(k):
    img, box, _ = scene(k)
    out, b = A.rotate90(img, box, k)
    assert out.shape == (img.shape[1], img.shape[0], 3) if k % 2 else img.shape
    check(out, b, BG, atol=0.0)


def test_flip():
    img, box, _ = scene(3)
    out, b = A.flip(img, box)
    check(out, b, BG, atol=0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_blur(seed):
    img, box, rng = scene(seed)
    out, b = A.gaussian_blur(img, box, rng, 5, 24)
    np.testing.assert_array_equal(b, box)
    # blurred noise averages to its mean (40); the edge is where the mix is 50 %
    check(out, b, BG, atol=2.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_motion_blur(seed):
    img, box, rng = scene(seed)
    out, b = A.motion_blur(img, box, rng, max_length=9)
    np.testing.assert_array_equal(b, box)
    check(out, b, BG, atol=2.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_color_jitter(seed):
    img, box, rng = scene(seed)
    out, b = A.color_jitter(img, box, rng)
    np.testing.assert_array_equal(b, box)
    # the background's new mean colour: the transform is the same for every pixel
    mask = np.ones(img.shape[:2], bool)
    x, y, w, h = box.astype(int)
    mask[y:y + h, x:x + w] = False
    check(out, b, out[mask].reshape(-1, 3).mean(0), atol=1.0)


def test_brightness_and_gray():
    img, box, _ = scene(5)
    out, b = A.brightness(img, box, 0.6, -10)
    np.testing.assert_array_equal(b, box)
    check(out, b, (14, 14, 14), atol=0.0)
    out, b = A.grayscale(img, box)
    np.testing.assert_array_equal(b, box)
    check(out, b, BG, atol=0.0)


@pytest.mark.parametrize("fill", ["flat", "mixed"])
@pytest.mark.parametrize("seed", range(30))
def test_occlusion_at_most_70_percent(seed, fill):
    img, box, rng = scene(seed)
    out, b = A.occlude(img, box, rng, max_fraction=0.7, fill=fill)
    np.testing.assert_array_equal(b, box)
    x, y, w, h = box.astype(int)
    inside = out[y:y + h, x:x + w]
    still_object = np.all(inside == OBJ, axis=-1).mean()
    assert still_object >= 0.3 - 1e-9, still_object
    # pixels outside the box are untouched only where the occluder did not reach;
    # the occluder's centre lies in the box, so it changed something inside
    assert still_object < 1.0 or np.array_equal(out, img)


@pytest.mark.parametrize("pipeline", [A.plain_search, A.position_aware, A.appearance_aware])
def test_pipelines_shapes_and_box_in_crop(pipeline):
    for seed in range(10):
        img, box, rng = scene(seed)
        out, b = pipeline(img, box, rng)
        assert out.shape == (255, 255, 3) and out.dtype == np.uint8
        assert b[2] > 0 and b[3] > 0
        cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
        assert abs(cx - 127.5) <= 64.5 + 1e-6 and abs(cy - 127.5) <= 64.5 + 1e-6


def test_position_aware_geometry():
    """Position-aware pipeline without colour: the box follows rotation and anisotropic scale."""
    ks = set()
    for seed in range(24):
        img, box, rng = scene(seed)
        out, b = A.position_aware(img, box, rng)
        check(out, b, BG, atol=1.5)
        ks.add(int(b[2] > b[3]) if abs(box[2] - box[3]) > 10 else None)
    assert {0, 1} <= ks  # both orientations seen
