"""Bearing of an image point: where a pixel looks, as a gimbal or heading loop needs it.

A controller that points a camera (or a vehicle) at the target wants an angle, not a
pixel: the pixel depends on the lens, the resolution, the binning and the crop. This
module turns an image point into

- the unit ray in the camera's optical frame (REP 103 / 105 `*_optical_frame`:
  x right, y down, z forward), with the lens distortion removed, and
- azimuth and elevation, in radians:
    azimuth   = atan2(x, z)              positive to the RIGHT of the optical axis
    elevation = atan2(-y, hypot(x, z))   positive ABOVE the optical axis
  so the ray is (sin az cos el, -sin el, cos az cos el): pan by the azimuth about
  the camera's vertical, then tilt by the elevation. The image centre (principal
  point) is (0, 0). In REP 103 body terms (x forward, y left, z up; yaw positive
  to the left, pitch positive nose down) a camera looking along the body's x axis
  sees the target at yaw = -azimuth and pitch = -elevation.

The camera is described as sensor_msgs/CameraInfo describes it (`CameraModel.from_
camera_info` reads the message, or anything with its fields, without importing ROS):

- K, D and `distortion_model` are for the full-resolution, unbinned sensor.
  Distortion models: `plumb_bob` (k1 k2 p1 p2 k3), `rational_polynomial` (k1 k2 p1 p2
  k3 k4 k5 k6), `equidistant` (OpenCV's fisheye: k1 k2 k3 k4); an empty or all-zero D
  is a distortion-free pinhole whatever the name.
- binning_x / binning_y (0 or 1: none) and roi (x_offset, y_offset; all zero: the full
  sensor) say how the published image relates to that sensor. A point (u, v) of the
  published image is the full-resolution point (roi.x_offset + u * binning_x,
  roi.y_offset + v * binning_y): the convention of image_geometry's
  PinholeCameraModel, so bearings agree with what image_proc and other ROS tools
  compute for the same camera_info.
- R and P matter only for rectified images (`rectified=True`: the tracker runs on
  image_rect). There the pixel is undistorted already; P's left 3x3 block gives the
  ray in the rectified frame and R (camera -> rectified, identity for a monocular
  camera) turns it back into the camera's optical frame, the frame camera_info's
  header names. P's translation column (a stereo baseline) shifts where the
  projection centre is, not the direction seen from it, and is ignored. For raw
  (`image_raw`) images R and P are not used.

Pixel coordinates follow the calibration's convention (OpenCV, ROS): the centre of
the top-left pixel is (0, 0). The trackers' boxes put pixel i on [i, i + 1)
(core/geometry.py), so a box's centre is `box_center_pixel(box)`, half a pixel left
and up of x + w/2, y + h/2.

Undistortion inverts the distortion model by Newton's method on the model itself
(analytic Jacobian), to a residual far below a pixel's angle, rather than by
OpenCV's fixed-count iteration, which stops early under strong distortion. A point
the model cannot map back (beyond the fold of a strongly distorting polynomial,
beyond what a fisheye model covers) raises ValueError instead of returning a wrong
direction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# Newton stops at this residual in normalised image coordinates (tan of an angle):
# 1e-6 px at a focal length of 1e5 px, far below any tracker's precision.
_TOLERANCE = 1e-12
_MAX_ITERATIONS = 50
# ... and accepts this one when rounding leaves no step that lowers the residual further
_FLOOR = 1e-10


def _floats(values, count: Optional[int], name: str) -> Tuple[float, ...]:
    out = tuple(float(v) for v in (values if values is not None else ()))
    if count is not None and len(out) != count:
        raise ValueError(f"{name} must have {count} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} has a non-finite value: {out}")
    return out


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics as sensor_msgs/CameraInfo holds them (row-major K, R, P)."""
    k: Tuple[float, ...]
    d: Tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    r: Tuple[float, ...] = _IDENTITY
    p: Tuple[float, ...] = ()
    binning_x: int = 1
    binning_y: int = 1
    roi_x_offset: int = 0
    roi_y_offset: int = 0

    def __post_init__(self):
        k = _floats(self.k, 9, "K")
        if not any(k):
            raise ValueError("K is all zero: the camera is not calibrated")
        if k[0] <= 0 or k[4] <= 0 or k[3] or k[6] or k[7] or k[8] != 1.0:
            raise ValueError(f"K is not a camera matrix [[fx s cx] [0 fy cy] [0 0 1]] with fx, fy > 0: {k}")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "d", _floats(self.d, None, "D"))
        r = _floats(self.r, 9, "R") if self.r is not None and len(self.r) else _IDENTITY
        object.__setattr__(self, "r", _IDENTITY if not any(r) else r)   # all zero: not set
        object.__setattr__(self, "p", _floats(self.p, 12, "P") if self.p is not None and len(self.p) else ())
        for name in ("binning_x", "binning_y"):
            value = int(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            object.__setattr__(self, name, max(value, 1))           # 0 means 1 (CameraInfo)
        object.__setattr__(self, "distortion_model", str(self.distortion_model or ""))
        _distortion(self)                                           # refuse unusable D early

    @classmethod
    def from_camera_info(cls, info) -> "CameraModel":
        """From a sensor_msgs/CameraInfo (rclpy, rosbags; ROS 1's upper-case K/D/R/P too)."""
        def field(name):   # rclpy gives numpy arrays, rosbags too; ROS 1 used K, D, R, P
            value = getattr(info, name) if hasattr(info, name) else getattr(info, name.upper(), None)
            return () if value is None else tuple(value)
        roi = getattr(info, "roi", None)
        return cls(k=field("k"), d=field("d"),
                   distortion_model=getattr(info, "distortion_model", "") or "",
                   r=field("r"), p=field("p"),
                   binning_x=int(getattr(info, "binning_x", 0) or 0),
                   binning_y=int(getattr(info, "binning_y", 0) or 0),
                   roi_x_offset=int(getattr(roi, "x_offset", 0) or 0) if roi is not None else 0,
                   roi_y_offset=int(getattr(roi, "y_offset", 0) or 0) if roi is not None else 0)

    def to_full_resolution(self, u: float, v: float) -> Tuple[float, float]:
        """A point of the published (binned, cropped) image in full-resolution pixels."""
        return self.roi_x_offset + u * self.binning_x, self.roi_y_offset + v * self.binning_y


@dataclass(frozen=True)
class Bearing:
    ray: np.ndarray          # unit vector, camera optical frame (x right, y down, z forward)
    azimuth: float           # rad, positive to the right
    elevation: float         # rad, positive up


def _distortion(camera: CameraModel):
    """(kind, coefficients): kind 'none', 'polynomial' (k1 k2 p1 p2 k3 k4 k5 k6) or
    'equidistant' (k1 k2 k3 k4)."""
    d = camera.d
    model = camera.distortion_model.lower()
    if not any(d):
        return "none", ()
    if model in ("plumb_bob", "rational_polynomial"):
        if len(d) < 4:
            raise ValueError(f"{model} needs at least 4 coefficients (k1 k2 p1 p2), got {len(d)}")
        if any(d[8:]):
            raise ValueError(f"{model}: thin-prism / tilt coefficients (D[8:]) are not supported: {d}")
        if model == "plumb_bob" and any(d[5:8]):
            raise ValueError(f"plumb_bob has 5 coefficients; D[5:8] = {d[5:8]} needs rational_polynomial")
        return "polynomial", (tuple(d[:8]) + (0.0,) * 8)[:8]
    if model == "equidistant":
        if any(d[4:]):
            raise ValueError(f"equidistant has 4 coefficients (k1 k2 k3 k4), got {d}")
        return "equidistant", (tuple(d[:4]) + (0.0,) * 4)[:4]
    raise ValueError(f"distortion model {model!r} is not supported ({', '.join(DISTORTION_MODELS)})")


def _polynomial_step(x: float, y: float, xd: float, yd: float, coefficients):
    """Residual of the plumb_bob / rational distortion at (x, y) against (xd, yd), and
    the Newton step that would cancel it (None where the Jacobian is not positive
    definite: past the fold of the polynomial, or where its denominator vanishes)."""
    k1, k2, p1, p2, k3, k4, k5, k6 = coefficients
    r2 = x * x + y * y
    a = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    b = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
    radial = a / b
    d_radial = ((k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)) * b
                - a * (k4 + r2 * (2.0 * k5 + 3.0 * k6 * r2))) / (b * b)
    fx = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
    fy = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - yd
    j11 = radial + 2.0 * x * x * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
    j12 = 2.0 * x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y      # the Jacobian is symmetric
    j22 = radial + 2.0 * y * y * d_radial + 6.0 * p1 * y + 2.0 * p2 * x
    det = j11 * j22 - j12 * j12
    residual = math.hypot(fx, fy)
    if not (math.isfinite(det) and math.isfinite(residual)) or det <= 0.0 or j11 <= 0.0 or b <= 0.0:
        return residual, None
    return residual, ((j22 * fx - j12 * fy) / det, (j11 * fy - j12 * fx) / det)


def _undistort_polynomial(xd: float, yd: float, coefficients) -> Tuple[float, float]:
    """Undistorted normalised point whose plumb_bob / rational distortion is (xd, yd):
    Newton's method from (xd, yd), each step halved until it reduces the residual, and
    the answer only where the model is locally invertible (positive Jacobian)."""
    tolerance = _TOLERANCE * max(1.0, math.hypot(xd, yd))
    x, y = xd, yd
    residual, step = _polynomial_step(x, y, xd, yd, coefficients)
    for _ in range(_MAX_ITERATIONS):
        if step is None:
            break
        if residual < tolerance:
            return x, y
        scale = 1.0
        for _ in range(40):
            nx, ny = x - scale * step[0], y - scale * step[1]
            new_residual, new_step = _polynomial_step(nx, ny, xd, yd, coefficients)
            if new_step is not None and new_residual < residual:
                break
            scale *= 0.5
        else:                                      # no step helps: rounding floor or no root
            if residual < _FLOOR * max(1.0, math.hypot(xd, yd)):
                return x, y
            break
        x, y, residual, step = nx, ny, new_residual, new_step
    raise ValueError(f"the distortion model cannot be inverted at normalised point ({xd:.6g}, {yd:.6g}): "
                     "it lies outside the region the calibration describes")


def _equidistant_ray(xd: float, yd: float, coefficients) -> np.ndarray:
    """Unit ray whose equidistant (fisheye) image is (xd, yd): the distorted radius is
    theta * (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8), theta the angle
    from the optical axis; solved for theta, so rays beyond 90 degrees come out too."""
    k1, k2, k3, k4 = coefficients
    rd = math.hypot(xd, yd)
    if rd == 0.0:
        return np.array([0.0, 0.0, 1.0])
    theta = min(rd, math.pi / 2)
    for _ in range(_MAX_ITERATIONS):
        t2 = theta * theta
        poly = 1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
        derivative = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
        residual = theta * poly - rd
        if not math.isfinite(derivative) or derivative <= 0.0:
            break                                  # theta_d(theta) folds back: no unique inverse
        if abs(residual) < _TOLERANCE * max(1.0, rd):
            if not 0.0 <= theta < math.pi:
                break
            scale = math.sin(theta) / rd
            return np.array([xd * scale, yd * scale, math.cos(theta)])
        next_theta = theta - residual / derivative
        theta = next_theta if next_theta > 0.0 else theta / 2.0
    raise ValueError(f"the equidistant model cannot be inverted at distorted radius {rd:.6g}")


def pixel_to_ray(camera: CameraModel, u: float, v: float, rectified: bool = False) -> np.ndarray:
    """Unit ray (x right, y down, z forward) through image point (u, v) of the published
    image, in the camera's optical frame (see the module docstring for binning, ROI,
    rectified images and the pixel convention)."""
    if not (math.isfinite(u) and math.isfinite(v)):
        raise ValueError(f"image point must be finite, got ({u}, {v})")
    u_full, v_full = camera.to_full_resolution(u, v)
    if rectified:
        if not camera.p or not any(camera.p):
            raise ValueError("a rectified image needs camera_info's P (it is empty or zero)")
        p = camera.p
        if p[0] <= 0 or p[5] <= 0:
            raise ValueError(f"P has no positive focal lengths: {p}")
        y_rect = (v_full - p[6]) / p[5]
        x_rect = (u_full - p[2] - p[1] * y_rect) / p[0]
        r = np.asarray(camera.r, dtype=np.float64).reshape(3, 3)
        ray = r.T @ np.array([x_rect, y_rect, 1.0])
        return ray / np.linalg.norm(ray)
    k = camera.k
    yd = (v_full - k[5]) / k[4]
    xd = (u_full - k[2] - k[1] * yd) / k[0]
    kind, coefficients = _distortion(camera)
    if kind == "equidistant":
        return _equidistant_ray(xd, yd, coefficients)
    x, y = (xd, yd) if kind == "none" else _undistort_polynomial(xd, yd, coefficients)
    ray = np.array([x, y, 1.0])
    return ray / np.linalg.norm(ray)


def ray_to_azimuth_elevation(ray: Sequence[float]) -> Tuple[float, float]:
    """(azimuth, elevation) in radians of an optical-frame ray: azimuth positive to the
    right, elevation positive up (module docstring)."""
    x, y, z = (float(c) for c in ray)
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)) or x == y == z == 0.0:
        raise ValueError(f"ray must be finite and non-zero, got {tuple(ray)}")
    return math.atan2(x, z), math.atan2(-y, math.hypot(x, z))


def azimuth_elevation_to_ray(azimuth: float, elevation: float) -> np.ndarray:
    """The unit optical-frame ray of (azimuth, elevation): the inverse of
    ray_to_azimuth_elevation for elevations within +-90 degrees."""
    return np.array([math.sin(azimuth) * math.cos(elevation), -math.sin(elevation),
                     math.cos(azimuth) * math.cos(elevation)])


def pixel_bearing(camera: CameraModel, u: float, v: float, rectified: bool = False) -> Bearing:
    """Ray, azimuth and elevation of image point (u, v) (pixel-centre convention)."""
    ray = pixel_to_ray(camera, u, v, rectified)
    azimuth, elevation = ray_to_azimuth_elevation(ray)
    return Bearing(ray, azimuth, elevation)


def box_center_pixel(box: Sequence[float]) -> Tuple[float, float]:
    """Centre of an (x, y, w, h) tracker box in the calibration's pixel convention (the
    top-left pixel's centre at (0, 0)); the boxes put pixel i on [i, i + 1)."""
    x, y, w, h = (float(c) for c in box)
    return x + w / 2.0 - 0.5, y + h / 2.0 - 0.5
