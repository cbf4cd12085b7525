"""core/bearing.py against hand computations: the forward camera models are written
here (angles -> ray -> normalised point -> distortion -> pixel through K), and the
module must give the angles back."""
import math
import types

import cv2
import numpy as np
import pytest

from siam_tracker_ros.core.bearing import (CameraModel, azimuth_elevation_to_ray, box_center_pixel,
                                           pixel_bearing, pixel_to_ray, ray_to_azimuth_elevation)

FX, FY, CX, CY = 610.0, 605.0, 322.5, 241.0
K = (FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0)
PLUMB_BOB = (-0.28, 0.075, 1.2e-3, -6e-4, -0.009)
RATIONAL = (0.35, -0.12, 8e-4, 3e-4, 0.02, 0.62, -0.05, 0.03)
FISHEYE = (0.02, -0.006, 0.001, -0.0002)
ANGLES = [(az, el) for az in np.linspace(-0.55, 0.55, 7) for el in np.linspace(-0.4, 0.4, 5)]


def ray_of(azimuth, elevation):
    """The sign convention, written out: azimuth positive right (+x), elevation
    positive up (-y, the optical frame's y points down)."""
    return (math.sin(azimuth) * math.cos(elevation), -math.sin(elevation), math.cos(azimuth) * math.cos(elevation))


def distort_polynomial(x, y, d):
    k1, k2, p1, p2, k3, k4, k5, k6 = (tuple(d) + (0.0,) * 8)[:8]
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def project(azimuth, elevation, d=(), model="plumb_bob", k=K):
    """Pixel (full resolution) of the direction (azimuth, elevation)."""
    x, y, z = ray_of(azimuth, elevation)
    if model == "equidistant":
        theta = math.atan2(math.hypot(x, y), z)
        k1, k2, k3, k4 = d
        theta_d = theta * (1 + k1 * theta ** 2 + k2 * theta ** 4 + k3 * theta ** 6 + k4 * theta ** 8)
        norm = math.hypot(x, y)
        xd, yd = (0.0, 0.0) if norm == 0 else (theta_d * x / norm, theta_d * y / norm)
    else:
        xd, yd = distort_polynomial(x / z, y / z, d) if d else (x / z, y / z)
    fx, s, cx, _, fy, cy = k[:6]
    return fx * xd + s * yd + cx, fy * yd + cy


def test_one_point_by_hand():
    """k1 = -0.2 only, fx = 600, cx = 320: the direction 0.5 to the right (x/z = 0.5,
    azimuth atan(0.5)) has r^2 = 0.25, radial factor 1 - 0.2 * 0.25 = 0.95, distorted
    x 0.475, pixel u = 320 + 600 * 0.475 = 605."""
    camera = CameraModel(k=(600, 0, 320, 0, 600, 240, 0, 0, 1), d=(-0.2, 0, 0, 0, 0))
    bearing = pixel_bearing(camera, 605.0, 240.0)
    assert bearing.azimuth == pytest.approx(math.atan(0.5), abs=1e-12)
    assert bearing.elevation == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(bearing.ray, np.array([0.5, 0.0, 1.0]) / math.sqrt(1.25), atol=1e-12)


@pytest.mark.parametrize("model,d", [("plumb_bob", PLUMB_BOB), ("rational_polynomial", RATIONAL),
                                     ("equidistant", FISHEYE), ("plumb_bob", ())])
def test_angles_are_recovered_through_the_distortion(model, d):
    camera = CameraModel(k=K, d=d, distortion_model=model)
    for azimuth, elevation in ANGLES:
        u, v = project(azimuth, elevation, d, model)
        bearing = pixel_bearing(camera, u, v)
        assert abs(bearing.azimuth - azimuth) < 1e-6 and abs(bearing.elevation - elevation) < 1e-6, (azimuth, elevation)
        np.testing.assert_allclose(bearing.ray, ray_of(azimuth, elevation), atol=1e-6)
        assert np.linalg.norm(bearing.ray) == pytest.approx(1.0, abs=1e-12)


def test_fisheye_beyond_90_degrees():
    camera = CameraModel(k=(300, 0, 640, 0, 300, 480, 0, 0, 1), d=FISHEYE, distortion_model="equidistant")
    for azimuth in (math.radians(95), math.radians(-100)):
        u, v = project(azimuth, 0.1, FISHEYE, "equidistant", camera.k)
        bearing = pixel_bearing(camera, u, v)
        assert bearing.ray[2] < 0                              # behind the image plane
        assert bearing.azimuth == pytest.approx(azimuth, abs=1e-6)
        assert bearing.elevation == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("model,d", [("plumb_bob", PLUMB_BOB), ("rational_polynomial", RATIONAL),
                                     ("equidistant", FISHEYE), ("", ())])
def test_principal_point_is_straight_ahead(model, d):
    bearing = pixel_bearing(CameraModel(k=K, d=d, distortion_model=model), CX, CY)
    assert (bearing.azimuth, bearing.elevation) == (0.0, 0.0)
    np.testing.assert_array_equal(bearing.ray, [0.0, 0.0, 1.0])


def test_zero_distortion_is_the_pinhole():
    camera = CameraModel(k=K, d=(0.0,) * 5)
    for azimuth, elevation in ANGLES:
        x, y, z = ray_of(azimuth, elevation)
        bearing = pixel_bearing(camera, CX + FX * x / z, CY + FY * y / z)
        assert bearing.azimuth == pytest.approx(azimuth, abs=1e-12)
        assert bearing.elevation == pytest.approx(elevation, abs=1e-12)


def test_signs_right_and_up():
    camera = CameraModel(k=K, d=PLUMB_BOB)
    right_up = pixel_bearing(camera, CX + 100, CY - 50)
    assert right_up.azimuth > 0 and right_up.elevation > 0
    left_down = pixel_bearing(camera, CX - 100, CY + 50)
    assert left_down.azimuth < 0 and left_down.elevation < 0
    assert ray_to_azimuth_elevation(azimuth_elevation_to_ray(0.3, -0.2)) == pytest.approx((0.3, -0.2), abs=1e-15)


def test_skew_is_applied():
    k = (FX, 4.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0)
    camera = CameraModel(k=k, d=PLUMB_BOB)
    u, v = project(0.2, -0.3, PLUMB_BOB, k=k)
    bearing = pixel_bearing(camera, u, v)
    assert (bearing.azimuth, bearing.elevation) == pytest.approx((0.2, -0.3), abs=1e-6)


def test_binning_and_roi_map_to_the_same_direction():
    """A point of a 2x2-binned image of the ROI starting at (100, 60) looks where its
    full-resolution pixel (100 + 2u, 60 + 2v) looks (image_geometry's convention)."""
    full = CameraModel(k=K, d=PLUMB_BOB)
    cropped = CameraModel(k=K, d=PLUMB_BOB, binning_x=2, binning_y=2, roi_x_offset=100, roi_y_offset=60)
    for u, v in [(10.0, 20.0), (57.25, 33.5), (150.0, 110.0)]:
        np.testing.assert_allclose(pixel_to_ray(cropped, u, v),
                                   pixel_to_ray(full, 100 + 2 * u, 60 + 2 * v), atol=1e-15)
    centre = pixel_bearing(cropped, (CX - 100) / 2, (CY - 60) / 2)
    assert (centre.azimuth, centre.elevation) == (0.0, 0.0)
    assert CameraModel(k=K, binning_x=0, binning_y=0).binning_x == 1          # 0 means no binning


def rotation_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_rectified_image_uses_p_and_r():
    """image_rect of a stereo camera: R turns the camera frame into the rectified one, P
    projects there (its baseline column does not change the direction)."""
    r = rotation_y(math.radians(2.0))
    fx_r, fy_r, cx_r, cy_r = 580.0, 580.0, 330.0, 236.0
    for tx in (0.0, -fx_r * 0.12):
        p = (fx_r, 0.0, cx_r, tx, 0.0, fy_r, cy_r, 0.0, 0.0, 0.0, 1.0, 0.0)
        camera = CameraModel(k=K, d=PLUMB_BOB, r=tuple(r.ravel()), p=p)
        for azimuth, elevation in ANGLES[::5]:
            ray = np.array(ray_of(azimuth, elevation))
            x, y, z = r @ ray
            u, v = fx_r * x / z + cx_r, fy_r * y / z + cy_r
            np.testing.assert_allclose(pixel_to_ray(camera, u, v, rectified=True), ray, atol=1e-12)
    with pytest.raises(ValueError, match="needs camera_info's P"):
        pixel_to_ray(CameraModel(k=K), CX, CY, rectified=True)


def test_agrees_with_opencv_undistortion():
    """An independent check beside the hand model: OpenCV's undistortPointsIter run to
    convergence."""
    pixels = np.array([[[20.0, 15.0]], [[600.0, 400.0]], [[CX + 3, CY - 200]]])
    for model, d in (("plumb_bob", PLUMB_BOB), ("rational_polynomial", RATIONAL)):
        camera = CameraModel(k=K, d=d, distortion_model=model)
        reference = cv2.undistortPointsIter(pixels, np.array(K).reshape(3, 3), np.array(d), None, None,
                                            (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 1000, 1e-15))
        for (u, v), (x, y) in zip(pixels[:, 0], reference[:, 0]):
            np.testing.assert_allclose(pixel_to_ray(camera, u, v),
                                       np.array([x, y, 1.0]) / math.sqrt(x * x + y * y + 1), atol=1e-7)


def test_points_the_model_cannot_invert_are_refused():
    """k1 = -0.5: the distorted radius r (1 - 0.5 r^2) peaks at 0.544 (r = 0.816); a
    pixel further out has no undistorted point, and a wrong direction is worse than
    none."""
    camera = CameraModel(k=(500, 0, 320, 0, 500, 240, 0, 0, 1), d=(-0.5, 0, 0, 0, 0))
    assert pixel_bearing(camera, 320 + 500 * 0.5, 240).azimuth > 0        # inside: fine
    with pytest.raises(ValueError, match="cannot be inverted"):
        pixel_bearing(camera, 320 + 500 * 0.6, 240)
    fisheye = CameraModel(k=(300, 0, 320, 0, 300, 240, 0, 0, 1), d=(-0.3, 0, 0, 0), distortion_model="equidistant")
    with pytest.raises(ValueError, match="cannot be inverted"):
        pixel_bearing(fisheye, 320 + 300 * 2.0, 240)


@pytest.mark.parametrize("kwargs,reason", [
    (dict(k=(0.0,) * 9), "not calibrated"),
    (dict(k=K[:8]), "9 values"),
    (dict(k=(FX, 0, CX, 0, -FY, CY, 0, 0, 1)), "fx, fy > 0"),
    (dict(k=(FX, 0, CX, 0, FY, CY, 0, 0, float("nan"))), "non-finite"),
    (dict(k=K, d=(0.1, 0.0, 0.0, 0.0, 0.0), distortion_model="kannala_brandt8"), "not supported"),
    (dict(k=K, d=(0.1, 0, 0, 0, 0, 0.2, 0, 0)), "needs rational_polynomial"),
    (dict(k=K, d=(0.1, 0, 0, 0, 0, 0, 0, 0, 0.01), distortion_model="rational_polynomial"), "thin-prism"),
    (dict(k=K, d=(0.1, 0.1, 0.0, 0.0, 0.3), distortion_model="equidistant"), "4 coefficients"),
    (dict(k=K, d=(0.1, 0.1), distortion_model="plumb_bob"), "at least 4"),
    (dict(k=K, binning_x=-1), "binning_x"),
])
def test_bad_camera_info_is_refused(kwargs, reason):
    with pytest.raises(ValueError, match=reason):
        CameraModel(**kwargs)


def test_unknown_model_name_with_zero_distortion_is_a_pinhole():
    assert pixel_bearing(CameraModel(k=K, d=(0.0,) * 5, distortion_model="whatever"), CX, CY).azimuth == 0.0


def test_non_finite_points_are_refused():
    with pytest.raises(ValueError, match="finite"):
        pixel_to_ray(CameraModel(k=K), float("nan"), 3.0)


def camera_info_fields(**extra):
    fields = dict(k=list(K), d=list(PLUMB_BOB), distortion_model="plumb_bob",
                  r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=[FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0],
                  binning_x=2, binning_y=2,
                  roi=types.SimpleNamespace(x_offset=100, y_offset=60, width=400, height=300, do_rectify=True))
    fields.update(extra)
    return fields


def test_from_camera_info_like_objects():
    camera = CameraModel.from_camera_info(types.SimpleNamespace(**camera_info_fields()))
    assert (camera.binning_x, camera.binning_y, camera.roi_x_offset, camera.roi_y_offset) == (2, 2, 100, 60)
    assert camera.k == K and camera.d == PLUMB_BOB
    # ROS 1 field names, no binning, no ROI, R all zero (unset)
    ros1 = types.SimpleNamespace(K=list(K), D=[], distortion_model="", R=[0.0] * 9, P=[0.0] * 12,
                                 binning_x=0, binning_y=0)
    camera = CameraModel.from_camera_info(ros1)
    assert camera.r == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0) and camera.binning_x == 1
    assert pixel_bearing(camera, CX, CY).azimuth == 0.0


@pytest.mark.ros_env
def test_from_a_sensor_msgs_camera_info():
    from sensor_msgs.msg import CameraInfo, RegionOfInterest
    fields = camera_info_fields()
    fields["roi"] = RegionOfInterest(x_offset=100, y_offset=60, width=400, height=300, do_rectify=True)
    msg = CameraInfo(width=1280, height=960, **fields)
    camera = CameraModel.from_camera_info(msg)
    u, v = project(0.25, 0.1, PLUMB_BOB)
    bearing = pixel_bearing(camera, (u - 100) / 2, (v - 60) / 2)
    assert (bearing.azimuth, bearing.elevation) == pytest.approx((0.25, 0.1), abs=1e-6)


def test_box_center_pixel_uses_pixel_centres():
    assert box_center_pixel((0, 0, 1, 1)) == (0.0, 0.0)          # pixel 0 covers [0, 1)
    assert box_center_pixel((10, 20, 4, 6)) == (11.5, 22.5)
