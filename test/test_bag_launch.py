"""Launch files and the rviz config. `launch` / `launch_ros` / rviz2 cannot be installed here:
each launch file is compiled, then run against small stand-ins of the launch API (they record
what the file builds), and the actions its OpaqueFunction returns are checked: executables,
remappings, parameters, included files, the siam-bag command line (parsed by siam-bag's own
parser). The rviz file is checked as YAML with the displays and topics it must show."""
import importlib.util
import os
import py_compile
import sys
import types

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_DIR = os.path.join(ROOT, "launch")
LAUNCH_FILES = ("tracker.launch.py", "camera_tracker.launch.py", "bag_replay_tracker.launch.py")


class Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchDescription:
    def __init__(self, entities):
        self.entities = list(entities)


class DeclareLaunchArgument(Action):
    def __init__(self, name, default_value=None, description=""):
        super().__init__(name, default_value=default_value, description=description)
        self.name, self.default_value = name, default_value


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


class Condition(Action):
    pass


class Node(Action):
    pass


class ExecuteProcess(Action):
    pass


class IncludeLaunchDescription(Action):
    pass


class PythonLaunchDescriptionSource(Action):
    pass


class OpaqueFunction(Action):
    pass


@pytest.fixture
def launch_api(monkeypatch, tmp_path):
    """Stand-ins for launch, launch_ros and ament_index_python (share dir = this checkout)."""
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m
    module("launch", LaunchDescription=LaunchDescription)
    module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=OpaqueFunction,
           IncludeLaunchDescription=IncludeLaunchDescription, ExecuteProcess=ExecuteProcess)
    module("launch.conditions", IfCondition=Condition, UnlessCondition=Condition)
    module("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
    module("launch.launch_description_sources", PythonLaunchDescriptionSource=PythonLaunchDescriptionSource)
    module("launch_ros")
    module("launch_ros.actions", Node=Node)
    prefix = tmp_path / "install"
    (prefix / "lib" / "siam_tracker_ros").mkdir(parents=True)
    (prefix / "lib" / "siam_tracker_ros" / "siam-bag").write_text("#!/bin/sh\n")
    module("ament_index_python")
    module("ament_index_python.packages", get_package_share_directory=lambda pkg: ROOT,
           get_package_prefix=lambda pkg: str(prefix))
    return prefix


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), os.path.join(LAUNCH_DIR, name))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate_launch_description()


def expand(desc, **overrides):
    """Run the OpaqueFunctions with the declared defaults plus `overrides`; returns
    (declared arguments, the other top-level actions, the actions the functions return)."""
    declared = {e.name: e.default_value for e in desc.entities if isinstance(e, DeclareLaunchArgument)}
    unknown = set(overrides) - set(declared)
    assert not unknown, f"not declared: {unknown}"
    context = types.SimpleNamespace(launch_configurations={**declared, **overrides})
    produced = []
    for e in desc.entities:
        if isinstance(e, OpaqueFunction):
            produced += e.kwargs["function"](context)
    static = [e for e in desc.entities if not isinstance(e, (DeclareLaunchArgument, OpaqueFunction))]
    return declared, static, produced


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_files_compile(name, tmp_path):
    py_compile.compile(os.path.join(LAUNCH_DIR, name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_tracker_launch(launch_api):
    declared, static, produced = expand(load("tracker.launch.py"))
    assert declared["image"] == "/camera/image_raw"
    (node,) = produced
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"]) == ("siam_tracker_ros", "tracker_node", "siam_tracker")
    assert kw["remappings"] == [("image", "/camera/image_raw")]
    assert kw["parameters"] == [os.path.join(ROOT, "config", "tracker.yaml")]
    assert os.path.isfile(kw["parameters"][0])
    (rviz,) = static
    assert rviz.kwargs["executable"] == "rviz2" and rviz.kwargs["arguments"][0] == "-d"
    assert os.path.isfile(rviz.kwargs["arguments"][1]) and rviz.kwargs["condition"].args[0].name == "rviz"
    # overrides: only the given ones, typed
    _, _, (node,) = expand(load("tracker.launch.py"), image="/robot/cam", model="siamfc", input="compressed",
                           num_threads="2", namespace="front")
    assert node.kwargs["remappings"] == [("image", "/robot/cam")] and node.kwargs["namespace"] == "front"
    assert node.kwargs["parameters"][1] == {"model": "siamfc", "input": "compressed", "num_threads": 2}
    from siam_tracker_ros.ros import params
    for key in node.kwargs["parameters"][1]:
        assert key in params.NODE_PARAMS, f"{key} is not a node parameter"
    assert node.kwargs["arguments"] == []
    # lifecycle mode: the node's own flags (tracker_node --lifecycle [--autostart])
    _, _, (node,) = expand(load("tracker.launch.py"), lifecycle="true")
    assert node.kwargs["arguments"] == ["--lifecycle", "--autostart"]
    _, _, (node,) = expand(load("tracker.launch.py"), lifecycle="true", autostart="false")
    assert node.kwargs["arguments"] == ["--lifecycle"]
    main_doc = open(os.path.join(ROOT, "siam_tracker_ros", "ros", "tracker_node.py")).read()
    assert '"--lifecycle"' in main_doc and '"--autostart"' in main_doc


def test_camera_tracker_launch(launch_api):
    desc = load("camera_tracker.launch.py")
    _, _, (driver, include) = expand(desc)
    assert (driver.kwargs["package"], driver.kwargs["executable"]) == ("v4l2_camera", "v4l2_camera_node")
    assert driver.kwargs["namespace"] == "camera"
    assert driver.kwargs["parameters"][0]["image_size"] == [640, 480]
    source = include.args[0].args[0]
    assert source == os.path.join(LAUNCH_DIR, "tracker.launch.py") and os.path.isfile(source)
    assert dict(include.kwargs["launch_arguments"]) == {"image": "/camera/image_raw"}

    _, _, (driver, include) = expand(desc, camera="usb_cam", camera_name="front", width="1280", height="720",
                                     fps="15", compressed="true", model="nanotrack")
    assert (driver.kwargs["package"], driver.kwargs["executable"]) == ("usb_cam", "usb_cam_node_exe")
    p = driver.kwargs["parameters"][0]
    assert (p["image_width"], p["image_height"], p["framerate"]) == (1280, 720, 15.0)
    args = dict(include.kwargs["launch_arguments"])
    assert args == {"image": "/front/image_raw", "input": "compressed", "model": "nanotrack"}
    # passed-on arguments are tracker.launch.py's own
    declared_tracker, _, _ = expand(load("tracker.launch.py"))
    assert set(args) <= set(declared_tracker)

    _, _, (include,) = expand(desc, camera="none", image="/robot/image", lifecycle="true")
    assert dict(include.kwargs["launch_arguments"]) == {"image": "/robot/image", "lifecycle": "true"}
    with pytest.raises(RuntimeError):
        expand(desc, camera="gopro")


def test_bag_replay_tracker_launch(launch_api):
    from siam_tracker_ros.cli.bag import build_parser
    desc = load("bag_replay_tracker.launch.py")
    declared, _, _ = expand(desc, bag="/data/crossing_bag")
    assert declared["bag"] is None          # required
    with pytest.raises(RuntimeError):
        expand(desc, bag="")
    _, _, (include, replay) = expand(desc, bag="/data/crossing_bag")
    cmd = replay.kwargs["cmd"]
    assert cmd[0] == str(launch_api / "lib" / "siam_tracker_ros" / "siam-bag")
    args = build_parser().parse_args(cmd[1:])      # siam-bag accepts the command line
    assert (args.command, args.bag, args.rate, args.lockstep, args.loop, args.record) == \
        ("replay", "/data/crossing_bag", 1.0, "/siam_tracker/tracked_object", False, None)
    assert dict(include.kwargs["launch_arguments"]) == {"image": "/camera/image_raw"}

    _, _, (include, replay) = expand(desc, bag="b", rate="0.5", lockstep="false", loop="true",
                                     record="/tmp/res", namespace="drone", model="siamfc")
    args = build_parser().parse_args(replay.kwargs["cmd"][1:])
    assert (args.rate, args.lockstep, args.loop, args.record) == (0.5, None, True, "/tmp/res")
    assert args.record_topic == ["/drone/siam_tracker/tracked_object"]
    assert args.remap == ["/siam_tracker/init:=/drone/siam_tracker/init"]
    assert dict(include.kwargs["launch_arguments"]) == {"image": "/camera/image_raw", "namespace": "drone",
                                                       "model": "siamfc"}


def test_rviz_config():
    from siam_tracker_ros.ros.params import NODE_NAME
    with open(os.path.join(ROOT, "config", "tracker.rviz")) as f:
        doc = yaml.safe_load(f)
    manager = doc["Visualization Manager"]
    displays = {d["Name"]: d for d in manager["Displays"]}
    topics = {d["Topic"]["Value"]: d for d in displays.values() if d["Class"] == "rviz_default_plugins/Image"}
    assert f"/{NODE_NAME}/debug_image" in topics and topics[f"/{NODE_NAME}/debug_image"]["Enabled"]
    cmap = topics[f"/{NODE_NAME}/confidence_image"]
    assert cmap["Enabled"] and (cmap["Min Value"], cmap["Max Value"]) == (0, 1)
    for d in topics.values():
        assert d["Topic"]["Reliability Policy"] in ("Best Effort", "Reliable") and d["Topic"]["Depth"] >= 1
    assert manager["Global Options"]["Fixed Frame"] and manager["Views"]["Current"]["Class"]
    # every display has its dock entry in the window geometry
    assert set(displays) <= set(doc["Window Geometry"])
