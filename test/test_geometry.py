import numpy as np
import pytest

from siam_tracker_ros.core import geometry as g


def test_iou_identical_disjoint_and_partial():
    assert g.iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert g.iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    assert g.iou([0, 0, 10, 10], [10, 0, 10, 10]) == 0.0          # touching edges
    # Overlap 5x10 = 50, union 100 + 100 - 50 = 150.
    assert g.iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)


def test_iou_broadcasts_and_handles_zero_area():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    out = g.iou(a, [0, 0, 10, 10])
    assert out.shape == (2,)
    assert out[0] == pytest.approx(1.0) and out[1] == 0.0


def test_conversions_round_trip():
    box = np.array([3.5, 4.0, 10.0, 20.0])
    assert np.allclose(g.xyxy_to_xywh(g.xywh_to_xyxy(box)), box)
    assert np.allclose(g.cxcywh_to_xywh(g.xywh_to_cxcywh(box)), box)
    assert np.allclose(g.xywh_to_cxcywh(box), [8.5, 14.0, 10.0, 20.0])


def test_context_size_matches_siamfc_formula():
    # w=h=100, p = 0.5 * 200 = 100 -> sqrt(200 * 200) = 200
    assert g.context_size(100, 100, 0.5) == pytest.approx(200.0)


def test_crop_inside_image_is_a_resized_copy():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255                      # white square centred at (50, 50)
    patch = g.crop_and_resize(image, (50, 50), 40, 40)   # 1:1 scale, region [30, 70)
    assert patch.shape == (40, 40, 3)
    assert patch[10:30, 10:30].min() == 255        # the square sits in the patch centre
    assert patch[:9].max() == 0 and patch[31:].max() == 0


def test_crop_at_border_is_padded_with_given_value():
    image = np.full((50, 50, 3), 200, np.uint8)
    patch = g.crop_and_resize(image, (0, 0), 40, 40, pad_value=(7, 8, 9))
    # Region [-20, 20): the top-left quarter lies outside the image.
    assert (patch[:19, :19] == [7, 8, 9]).all()
    assert (patch[21:, 21:] == 200).all()


def test_crop_pads_with_mean_colour_by_default():
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, :10] = 100                             # mean of channel = 50
    patch = g.crop_and_resize(image, (-50, -50), 20, 10)   # fully outside
    assert (patch == 50).all()


def test_crop_region_matches_crop():
    region = g.crop_region((50, 60), 40)
    assert np.allclose(region, [30, 40, 40, 40])


def test_validate_box_rejects_bad_boxes():
    for bad in ([0, 0, 0, 10], [0, 0, 10, -1], [200, 0, 10, 10], [-20, -20, 10, 10],
                [np.nan, 0, 1, 1], [1, 2, 3]):
        with pytest.raises(ValueError):
            g.validate_box(bad, 100, 100)
    assert np.allclose(g.validate_box([90, 90, 20, 20], 100, 100), [90, 90, 20, 20])


def test_clip_box_keeps_box_inside():
    assert np.allclose(g.clip_box([-10, -10, 30, 30], 100, 100), [0, 0, 20, 20])
    assert np.allclose(g.clip_box([90, 90, 30, 30], 100, 100), [90, 90, 10, 10])
