"""Attention-based Siamese single-object trackers for ROS 2.

`siam_tracker_ros.core` is plain Python/PyTorch (no ROS); `ros/` is the thin
ROS 2 layer on top of it.
"""

__version__ = "0.1.0"
