"""siam_tracker_ros: `pip install .` gives the core (no ROS needed) and the data files;
the ROS layer imports rclpy and the interfaces (built by CMakeLists.txt with colcon:
a ROS workspace, or `make env`) only when used. Executables: setup.cfg."""
import os

from setuptools import find_packages, setup

PACKAGE = "siam_tracker_ros"


def data_files():
    files = [("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
             (f"share/{PACKAGE}", ["package.xml"])]
    # launch/ and config/ with every subfolder and msg/ (the bag tools read it), as the colcon
    # build installs them
    for top in ("launch", "config", "msg"):
        for folder, _, names in sorted(os.walk(top)):
            found = sorted(os.path.join(folder, n) for n in names if not n.endswith(".pyc"))
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
