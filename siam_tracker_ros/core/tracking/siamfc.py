"""SiamFC-style tracking: a scale pyramid of search crops, an upsampled response,
a cosine window against large jumps, and damped scale updates.

Used by SiamFC and RASNet (which differ in the correlation, not in this loop).
Model contract: model.template(z) -> template state; model.track(state, x) ->
{"response": Sx1xHxW logits} for S search crops (one template for the S scales;
batched with other targets, core/tracking/multi.py repeats each target's
template state over its S rows). The template crop and the window are the
shared Siamese ones (core/tracking/siamese.py); the choice is SiamFC's own: the
best-peaked scale (the others' peaks x scale_penalty), the windowed peak of its
upsampled response, the size damped by scale_lr.
"""
import cv2
import numpy as np
import torch

from .. import geometry
from .base import TrackResult, TrackState
from .params import SIAMFC, tracker_defaults
from .registry import register_tracker
from .siamese import SiameseTracker, hanning_window


@register_tracker(SIAMFC)
class SiamFCTracker(SiameseTracker):
    KIND = SIAMFC
    DEFAULTS = tracker_defaults(SIAMFC)
    STATE_FIELDS = SiameseTracker.STATE_FIELDS + ("z_size", "x_size")

    def __init__(self, model, params, device="auto"):
        super().__init__(model, params, device)
        p = self.params
        n = int(p["scale_num"])
        self.scale_factors = float(p["scale_step"]) ** (np.arange(n) - (n - 1) / 2.0)
        self._window = None

    def _cosine_window(self, size: int) -> np.ndarray:
        if self._window is None or self._window.shape[0] != size:
            window = hanning_window(size)
            self._window = window / window.sum()
        return self._window

    def _init(self, image):
        p = self.params
        self.z_size = self._template_side()
        self.x_size = self.z_size * p["instance_size"] / p["exemplar_size"]
        super()._init(image)

    def _prepare_search(self, image):
        p = self.params
        instance = int(p["instance_size"])
        sizes = self.x_size * self.scale_factors
        patches = np.stack([geometry.crop_and_resize(image, self.center, s, instance, self.avg_color)
                            for s in sizes])
        x = torch.from_numpy(patches.transpose(0, 3, 1, 2).copy()).to(self.device, torch.float32)
        return x, {"sizes": sizes}

    def _decode(self, out):
        return out["response"][:, 0].float().cpu().numpy()

    def _finish(self, raw, ctx):
        p = self.params
        instance = int(p["instance_size"])
        sizes = ctx["sizes"]
        up = int(p["response_up"])
        map_size = raw.shape[-1]
        up_size = map_size * up
        responses = np.stack([cv2.resize(r, (up_size, up_size), interpolation=cv2.INTER_CUBIC)
                              for r in raw])
        centre_scale = (len(sizes) - 1) // 2
        peaks = responses.reshape(len(sizes), -1).max(axis=1)
        peaks[np.arange(len(sizes)) != centre_scale] *= p["scale_penalty"]
        best = int(np.argmax(peaks))

        response = responses[best] - responses[best].min()
        response = response / (response.sum() + 1e-12)
        wi = p["window_influence"]
        response = (1 - wi) * response + wi * self._cosine_window(up_size)
        row, col = np.unravel_index(int(np.argmax(response)), response.shape)

        # Peak displacement: upsampled-map px -> search-crop px -> image px.
        disp_up = np.array([col, row], dtype=np.float64) - (up_size - 1) / 2.0
        disp_crop = disp_up * p["total_stride"] / up
        scale_to_image = sizes[best] / instance
        prior_center = self.center.copy()
        self.center = self.center + disp_crop * scale_to_image

        damped = (1 - p["scale_lr"]) + p["scale_lr"] * self.scale_factors[best]
        self.size = self.size * damped
        self._clip_state(float(p["min_size"]))
        self.z_size *= damped
        self.x_size *= damped

        confidence = 1.0 / (1.0 + np.exp(-raw[best].astype(np.float64)))
        score = float(confidence.max())
        # Map cell u sits at a displacement of (u - (map_size-1)/2) * stride crop px.
        extent = map_size * p["total_stride"] * scale_to_image
        region = np.array([prior_center[0] - extent / 2, prior_center[1] - extent / 2, extent, extent])
        return TrackResult(box=self.box, score=score, state=TrackState.TRACKING,
                           confidence_map=confidence.astype(np.float32), map_region=region)
