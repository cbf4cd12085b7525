"""siam_tracker_ros: `pip install .` gives the core (no ROS needed); the ROS
layer imports rclpy and the siam_tracker_ros interfaces only when used."""
import glob
import os

from setuptools import find_packages, setup

PACKAGE = "siam_tracker_ros"


def data_files():
    files = [("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
             (f"share/{PACKAGE}", ["package.xml"])]
    for folder in ("launch", "config", "config/models"):
        found = [p for p in glob.glob(f"{folder}/*") if os.path.isfile(p)]
        if found:
            files.append((f"share/{PACKAGE}/{folder}", found))
    return files


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.md"]},
    data_files=data_files(),
    python_requires=">=3.10",
    install_requires=["numpy", "opencv-contrib-python-headless", "PyYAML", "tqdm", "torch"],
    zip_safe=True,
    maintainer="siam_tracker_ros maintainers",
    description="Attention-based Siamese single-object trackers for ROS 2",
    license="Apache-2.0",
)
