"""The package's import graph has no cycle: between modules, or between packages.

Every import statement of every module is read with `ast` (module level, inside
functions and under conditions alike: a lazy import is still a dependency), and
resolved to the package's own modules. Packages: siam_tracker_ros.core (its top
modules: geometry, params, runtime ...), core.models, core.engines, core.tracking,
train, evaluation, ros, cli. The layering they follow: docs/ARCHITECTURE.md.
"""
import ast
import os
from collections import defaultdict

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "siam_tracker_ros"
SUBPACKAGES = ("core.models", "core.engines", "core.tracking", "core", "train", "evaluation", "ros", "cli")


def modules():
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def imports_of(name, path, known):
    """The package's modules that `name` imports (anywhere in its body)."""
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[:len(name.split(".")) - (0 if is_package else 1)]
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin] + [f"{origin}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:          # `from pkg import name`: the module pkg.name or pkg
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def package_of(module):
    rest = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    for sub in SUBPACKAGES:
        if rest == sub or rest.startswith(sub + "."):
            return sub
    return "(top)"


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_the_walk_sees_lazy_imports(graph):
    # a function-level import and a package-relative one are both edges
    assert f"{PACKAGE}.core.tracking.registry" in graph[f"{PACKAGE}.core.tracking.loading"]
    assert f"{PACKAGE}.core.tracking.monitor" in graph[f"{PACKAGE}.ros.bag_eval"]


def test_no_module_cycle(graph):
    found = cycles(graph)
    assert not found, "modules importing each other in a loop: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_package_cycle(graph):
    packages = defaultdict(set)
    why = defaultdict(list)
    for a, targets in graph.items():
        for b in targets:
            pa, pb = package_of(a), package_of(b)
            if pa != pb and "(top)" not in (pa, pb):
                packages[pa].add(pb)
                why[(pa, pb)].append(f"{a} -> {b}")
    found = cycles(packages)
    details = [f"{a} -> {b}: {why[(a, b)][:3]}" for comp in found for a in comp for b in comp if (a, b) in why]
    assert not found, f"packages importing each other in a loop: {found}; {details}"


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
