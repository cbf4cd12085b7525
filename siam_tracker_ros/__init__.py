"""Attention-based Siamese single-object trackers for ROS 2.

`siam_tracker_ros.core` is plain Python/PyTorch (no ROS); `ros/` is the thin
ROS 2 layer on top of it; `siam_tracker_ros.msg` holds the generated message
classes (built from msg/ by CMakeLists.txt, absent from a core-only `pip install .`).
"""
from pkgutil import extend_path

# In a colcon install the generated interface code (msg/, its extension modules) sits in
# this very folder. In the venv's editable install it sits in site-packages/siam_tracker_ros
# while this file is the checkout's: extend_path adds every other siam_tracker_ros folder
# on sys.path to this package, so `siam_tracker_ros.msg` is found there.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
