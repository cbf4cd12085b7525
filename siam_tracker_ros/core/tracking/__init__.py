from .base import Tracker, TrackResult, TrackState, resolve_device  # noqa: F401
