"""A Python that sees the installed packages of this interpreter (torch, rclpy, the ROS
wheels) but not this checkout: a venv of its own whose site-packages names this process's
site-packages folders in a .pth. Python processes .pth files of site directories only, so
the .pth files inside those folders (the editable install's, which puts the checkout on
sys.path) are not read there. What a robot's system Python with /opt/ros sourced is to a
colcon install."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path


def isolated_python(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # every folder of installed packages this process sees (its venv's, and under `colcon
    # test` the ones its own .pth / PYTHONPATH name), in this process's order
    installed = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
                 and os.path.isdir(p)]
    Path(site, "ros_install.pth").write_text("\n".join(dict.fromkeys(installed)) + "\n")
    return python


def ros_library_path() -> str:
    """What the ROS wheels' bootstrap puts on LD_LIBRARY_PATH (it runs from a .pth)."""
    site = Path(sysconfig.get_paths()["purelib"])
    parts = [str(Path(sys.prefix) / "lib")] + [str(p) for p in sorted(site.glob("ros_*.libs"))]
    return os.pathsep.join(parts + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
