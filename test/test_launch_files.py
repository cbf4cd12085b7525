"""The launch files, checked from their source: `launch` / `launch_ros` are not installable
here, so nothing is run and nothing stands in for them. Each file is parsed (ast) and the
construction that keeps it right under the real `ros2 launch` is checked:

- launch configurations are not scoped by IncludeLaunchDescription (the launch docs: an
  included file's DeclareLaunchArgument keeps a configuration that is already set, and the
  include's own launch_arguments are set as configurations of the including scope). So the
  two files that include tracker.launch.py do it inside GroupAction(scoped=True) and pass
  EVERY argument tracker.launch.py declares, each from an argument of their own with the same
  name, the same default and the same choices: no value can reach it that it would reject,
  whatever the user gives (the launch system checks choices at the outer declaration);
- every argument has a description; the names users type are the same in the three files
  (image, input, params_file, rviz, namespace);
- every process started (camera driver, tracker node, bag replay) ends the launch when it
  exits (RegisterEventHandler(OnProcessExit(target_action=it, on_exit=[EmitEvent(Shutdown)]))),
  so none outlives it; rviz2 (optional viewer) is the only exception;
- the node parameters tracker.launch.py may override are keys of the params file;
- the siam-bag options the replay passes exist in siam-bag's own parser;
- every `ros2 launch siam_tracker_ros ...` line in the README, docs and launch files' own
  docstrings names declared arguments only, with values their choices allow.
Where the real launch is importable, the declared arguments are also compared with what
`LaunchDescription.get_launch_arguments()` reports.
"""
import ast
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_DIR = os.path.join(ROOT, "launch")
TRACKER = "tracker.launch.py"
INCLUDING = ("camera_tracker.launch.py", "bag_replay_tracker.launch.py")
LAUNCH_FILES = (TRACKER,) + INCLUDING
COMMON_NAMES = ("image", "input", "params_file", "rviz", "namespace")


def parse(name):
    with open(os.path.join(LAUNCH_DIR, name)) as f:
        return ast.parse(f.read(), filename=name)


def func_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and func_name(n) == name]


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def declared_arguments(tree):
    """name -> {"default": ast node or None, "choices": tuple or None, "description": str}."""
    out = {}
    for call in calls(tree, "DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        assert name not in out, f"{name} declared twice"
        choices = keyword(call, "choices")
        description = keyword(call, "description")
        out[name] = {"default": keyword(call, "default_value"),
                     "choices": tuple(ast.literal_eval(choices)) if choices is not None else None,
                     "description": _text(description) if description is not None else ""}
    return out


def _text(node):
    """A literal string, or an implicit concatenation of literals."""
    return ast.literal_eval(node)


def default_text(arg):
    node = arg["default"]
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def assignments(tree):
    """(variable name, the call assigned to it) for every `name = Call(...)`."""
    return [(t.id, n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            for t in n.targets if isinstance(t, ast.Name)]


@pytest.fixture(scope="module")
def trees():
    return {name: parse(name) for name in LAUNCH_FILES}


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_every_argument_has_a_description_and_valid_default(trees, name):
    args = declared_arguments(trees[name])
    assert args, f"{name} declares no arguments"
    for arg_name, arg in args.items():
        assert len(arg["description"]) > 10, f"{name}: {arg_name} has no description"
        default = default_text(arg)
        if arg["choices"] is not None:
            assert default in arg["choices"], f"{name}: {arg_name} default {default!r} not in {arg['choices']}"
    assert set(COMMON_NAMES) <= set(args), f"{name} lacks {set(COMMON_NAMES) - set(args)}"


@pytest.mark.parametrize("name", INCLUDING)
def test_includes_pass_every_tracker_argument_in_a_scoped_group(trees, name):
    tree = trees[name]
    tracker_args = declared_arguments(trees[TRACKER])
    own_args = declared_arguments(tree)
    includes = calls(tree, "IncludeLaunchDescription")
    assert len(includes) == 1, f"{name}: {len(includes)} includes"
    include = includes[0]
    # the included file is tracker.launch.py of this package
    source = include.args[0]
    assert func_name(source) == "PythonLaunchDescriptionSource"
    target = source.args[0]
    if isinstance(target, ast.Name):
        target = next(call for var, call in assignments(tree) if var == target.id)
    assert "tracker.launch.py" in ast.unparse(target) and "FindPackageShare(PACKAGE)" in ast.unparse(target)
    # inside GroupAction(scoped=True)
    groups = [g for g in calls(tree, "GroupAction")
              if any(n is include for n in ast.walk(g))]
    assert groups, f"{name}: the include is not in a GroupAction"
    scoped = keyword(groups[0], "scoped")
    assert scoped is not None and ast.literal_eval(scoped) is True, f"{name}: the group is not scoped=True"
    # launch_arguments={...}.items(): every argument tracker.launch.py declares
    passed = keyword(include, "launch_arguments")
    assert isinstance(passed, ast.Call) and isinstance(passed.func, ast.Attribute) and \
        passed.func.attr == "items" and isinstance(passed.func.value, ast.Dict), \
        f"{name}: launch_arguments must be a literal dict's .items()"
    mapping = {ast.literal_eval(k): v for k, v in zip(passed.func.value.keys, passed.func.value.values)}
    assert set(mapping) == set(tracker_args), \
        f"{name}: passes {sorted(mapping)}, tracker.launch.py declares {sorted(tracker_args)}"
    for arg_name, value in mapping.items():
        # each from this file's own argument of the same name ...
        assert func_name(value) == "LaunchConfiguration" and ast.literal_eval(value.args[0]) == arg_name, \
            f"{name}: {arg_name} is passed {ast.unparse(value)}"
        assert arg_name in own_args, f"{name}: passes {arg_name} without declaring it"
        # ... with the included file's choices and default (image: a default of its own, never empty)
        mine, theirs = own_args[arg_name], tracker_args[arg_name]
        assert mine["choices"] == theirs["choices"], (name, arg_name, mine["choices"], theirs["choices"])
        if arg_name == "image":
            assert default_text(mine) not in (None, ""), f"{name}: image needs a default"
        else:
            assert default_text(mine) == default_text(theirs), \
                (name, arg_name, default_text(mine), default_text(theirs))


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_every_process_ends_the_launch_when_it_exits(trees, name):
    tree = trees[name]
    tied = set()
    for handler in calls(tree, "OnProcessExit"):
        target, on_exit = keyword(handler, "target_action"), keyword(handler, "on_exit")
        emits = [c for c in calls(on_exit, "EmitEvent") if calls(c, "Shutdown")] if on_exit is not None else []
        if isinstance(target, ast.Name) and emits:
            tied.add(target.id)
    processes = calls(tree, "Node") + calls(tree, "ExecuteProcess")
    assert processes or name != TRACKER
    for process in processes:
        executable = keyword(process, "executable")
        if executable is not None and ast.literal_eval(executable) == "rviz2":
            continue          # the optional viewer: closing it leaves the tracker running
        names = [var for var, call in assignments(tree) if call is process]
        assert names and names[0] in tied, \
            f"{name}: {ast.unparse(process)[:80]} does not end the launch when it exits"


def test_tracker_overrides_are_params_file_keys(trees):
    tree = trees[TRACKER]
    overrides = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "OVERRIDES" for t in n.targets))
    # (launch argument, node parameter, type)
    names = [ast.literal_eval(e.elts[0]) for e in overrides.elts]
    targets = [ast.literal_eval(e.elts[1]) for e in overrides.elts]
    with open(os.path.join(ROOT, "config", "tracker.yaml")) as f:
        params = next(iter(yaml.safe_load(f).values()))["ros__parameters"]
    assert set(targets) <= set(params), f"not node parameters: {set(targets) - set(params)}"
    declared = declared_arguments(tree)
    assert set(names) <= set(declared)
    # the node is the package's tracker_node, named as the params file and the clients expect
    node = next(c for c in calls(tree, "Node") if ast.literal_eval(keyword(c, "executable")) == "tracker_node")
    assert ast.unparse(keyword(node, "name")) == "NODE_NAME"
    assert "params_file" in ast.unparse(keyword(node, "parameters"))
    assert ast.unparse(keyword(node, "remappings")) == "[('image', value('image'))]"


def test_bag_replay_options_exist_in_siam_bag():
    from siam_tracker_ros.cli.bag import build_parser
    parser = build_parser()
    replay = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices["replay"]
    options = {o for a in replay._actions for o in a.option_strings}
    tree = parse("bag_replay_tracker.launch.py")
    used = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and re.fullmatch(r"--[a-z][a-z-]+", n.value)}
    assert used and used <= options, f"siam-bag replay does not know {used - options}"


LAUNCH_LINE = re.compile(r"ros2 launch siam_tracker_ros (\S+\.launch\.py)((?:[ \t]+[A-Za-z_]+:=\S+)*)")


def _documented_launch_lines():
    texts = [os.path.join(ROOT, "README.md")]
    texts += [os.path.join(ROOT, "docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) if f.endswith(".md")]
    texts += [os.path.join(LAUNCH_DIR, f) for f in LAUNCH_FILES]
    for path in texts:
        with open(path) as f:
            for match in LAUNCH_LINE.finditer(f.read()):
                yield os.path.relpath(path, ROOT), match.group(1), match.group(2).split()


def test_documented_launch_commands_use_declared_arguments(trees):
    lines = list(_documented_launch_lines())
    assert len(lines) >= 8, lines
    for where, file, assignments in lines:
        assert file in trees, f"{where}: no launch file {file}"
        args = declared_arguments(trees[file])
        given = dict(a.split(":=", 1) for a in assignments)
        for key, value in given.items():
            assert key in args, f"{where}: {file} declares no argument {key}"
            if args[key]["choices"] is not None:
                assert value in args[key]["choices"], f"{where}: {key}:={value} not in {args[key]['choices']}"
        required = [k for k, a in args.items() if a["default"] is None]
        assert set(required) <= set(given), f"{where}: {file} needs {required}"


def test_real_launch_sees_the_same_arguments():
    launch = pytest.importorskip("launch", reason="the launch package is not installed (not in the registries)")
    if not hasattr(launch, "LaunchDescription"):
        pytest.skip("`launch` here is a folder, not the launch package")
    import importlib.util
    for name in LAUNCH_FILES:
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), os.path.join(LAUNCH_DIR, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        real = {a.name for a in module.generate_launch_description().get_launch_arguments()}
        assert real >= set(declared_arguments(parse(name))), name


def test_rviz_config():
    with open(os.path.join(ROOT, "config", "tracker.rviz")) as f:
        doc = yaml.safe_load(f)
    manager = doc["Visualization Manager"]
    displays = {d["Name"]: d for d in manager["Displays"]}
    topics = {d["Topic"]["Value"]: d for d in displays.values() if d["Class"] == "rviz_default_plugins/Image"}
    assert "/siam_tracker/debug_image" in topics and topics["/siam_tracker/debug_image"]["Enabled"]
    cmap = topics["/siam_tracker/confidence_image"]
    assert cmap["Enabled"] and (cmap["Min Value"], cmap["Max Value"]) == (0, 1)
    for d in topics.values():
        assert d["Topic"]["Reliability Policy"] in ("Best Effort", "Reliable") and d["Topic"]["Depth"] >= 1
    assert manager["Global Options"]["Fixed Frame"] and manager["Views"]["Current"]["Class"]
    # every display has its dock entry in the window geometry
    assert set(displays) <= set(doc["Window Geometry"])
