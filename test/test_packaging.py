"""The package as ROS tools see it: package.xml (parsed and validated by catkin_pkg, what
rosdep and bloom read) declares every module the code imports, with rosdep keys; the
licence; the executables list; and, when the suite runs under `colcon test`, that it tests
the installed package, not the source tree."""
import ast
import configparser
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imported module -> the package.xml dependency (a rosdep key or a ROS package) that provides it.
PROVIDED_BY = {
    "torch": "python3-pytorch-pip", "numpy": "python3-numpy", "cv2": "python3-opencv",
    "yaml": "python3-yaml", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
    "rosbags": "python3-rosbags-pip", "pytest": "python3-pytest", "catkin_pkg": "python3-catkin-pkg-modules",
    "rclpy": "rclpy", "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "std_srvs": "std_srvs",
    "diagnostic_msgs": "diagnostic_msgs", "rcl_interfaces": "rcl_interfaces",
    "lifecycle_msgs": "lifecycle_msgs", "builtin_interfaces": "builtin_interfaces",
    "ament_index_python": "ament_index_python", "launch": "launch", "launch_ros": "launch_ros",
    "vision_msgs": "vision_msgs",
}
# Optional, imported only on their own paths, not declared (package.xml says why).
OPTIONAL = {"onnx", "onnxruntime", "onnxscript"}
OWN = {"siam_tracker_ros", "ros_node_fixtures", "toy_training", "siamban_reference", "conftest", "isolated_python",
       "test_ta_asiam",
       "test_train_data"}


def package():
    from catkin_pkg.package import parse_package
    return parse_package(os.path.join(ROOT, "package.xml"))


def imported_modules(folders):
    found = {}
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    tree = ast.parse(f.read(), filename=path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        mods = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        mods = [node.module]
                    else:
                        continue
                    for mod in mods:
                        found.setdefault(mod.split(".")[0], os.path.relpath(path, ROOT))
    return found


def test_package_xml_is_valid_for_catkin_pkg():
    pkg = package()
    pkg.validate()
    assert pkg.name == "siam_tracker_ros" and pkg.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]


@pytest.mark.parametrize("folders,kinds", [
    (("siam_tracker_ros", "launch"), ("exec_depends", "build_export_depends")),
    (("test",), ("exec_depends", "build_export_depends", "test_depends")),
])
def test_every_import_is_declared(folders, kinds):
    pkg = package()
    declared = {d.name for kind in kinds for d in getattr(pkg, kind)}
    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for mod, where in imported_modules(folders).items():
        if mod in stdlib or mod in OWN or mod in OPTIONAL or mod == "__future__":
            continue
        assert mod in PROVIDED_BY, f"{where} imports {mod}: add its rosdep key to package.xml and PROVIDED_BY"
        if PROVIDED_BY[mod] not in declared:
            missing[mod] = PROVIDED_BY[mod]
    assert not missing, f"not declared in package.xml ({', '.join(kinds)}): {missing}"


def test_license_file_matches_package_xml():
    (license_,) = package().licenses
    assert str(license_) == "Apache-2.0"
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert 'license="Apache-2.0"' in f.read()


def test_executables_are_one_list():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    scripts = dict(line.split("=", 1) for line in cfg["options.entry_points"]["console_scripts"].splitlines()
                   if line.strip())
    scripts = {k.strip(): v.strip() for k, v in scripts.items()}
    assert {"tracker_node", "siam-ctl", "siam-bag"} <= set(scripts)
    import importlib
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert "entry_points" not in f.read(), "setup.py must not keep a second list"


@pytest.mark.skipif(not os.environ.get("SIAM_TRACKER_COLCON_TEST"), reason="only under `colcon test`")
def test_colcon_test_runs_against_the_install():
    from siam_tracker_ros.core import package_files
    import siam_tracker_ros
    assert package_files.checkout_root() is None, f"testing the source tree {siam_tracker_ros.__file__}"
    assert package_files.install_share_dir(), siam_tracker_ros.__file__


def test_env_sh_gives_every_terminal_of_a_checkout_one_domain(tmp_path):
    """Shells that source env.sh in this checkout, from any working directory, get the same
    ROS_DOMAIN_ID (they see each other's nodes); one set beforehand is kept."""
    import subprocess
    if not os.path.isfile(os.path.join(ROOT, ".venv", "bin", "activate")):
        pytest.skip("no .venv in this checkout (env.sh needs it): run `make env`")
    env = {k: v for k, v in os.environ.items() if k not in ("ROS_DOMAIN_ID", "SIAM_TRACKER_ROOT")}

    def domain(cwd, **extra):
        out = subprocess.run(["bash", "-c", f". '{ROOT}/env.sh' >/dev/null && echo $ROS_DOMAIN_ID"],
                             env={**env, **extra}, capture_output=True, text=True, check=True, cwd=cwd)
        return out.stdout.strip()
    first = domain(ROOT)
    assert first.isdigit() and (1 <= int(first) <= 101 or 215 <= int(first) <= 232), first
    assert domain(ROOT) == first and domain(tmp_path) == first
    assert domain(ROOT, ROS_DOMAIN_ID="42") == "42"


def test_pip_install_of_the_core_finds_its_files(tmp_path):
    """`pip install .` (no ROS): the core and its data files from the install prefix, with a
    Python that does not see this checkout; the shipped model loads with its weights."""
    import subprocess
    from isolated_python import isolated_python
    prefix = tmp_path / "prefix"
    # --ignore-installed: with --prefix alone pip would first uninstall the checkout's own
    # (editable) install from this venv
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--ignore-installed", "--prefix", str(prefix), ROOT], check=True, capture_output=True,
                   cwd=tmp_path)
    python = isolated_python(tmp_path / "python")
    (site,) = prefix.glob("lib/python3*/site-packages")
    probe = """
import json, siam_tracker_ros
from siam_tracker_ros.core.models import registry
from siam_tracker_ros.core.tracking.loading import build_tracker
tracker = build_tracker("default", device="cpu")
print(json.dumps({"package": siam_tracker_ros.__file__, "config_dirs": registry.config_dirs(),
                  "models": registry.available_models(), "weights": tracker.config.get("_weights")}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    out = subprocess.run([str(python), "-c", probe], env={**env, "PYTHONPATH": str(site)}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["package"].startswith(str(prefix))
    assert seen["config_dirs"] == [str(prefix / "share" / "siam_tracker_ros" / "config" / "models")]
    assert "default" in seen["models"]
    assert seen["weights"] and seen["weights"].startswith(str(prefix)), seen["weights"]
