#!/usr/bin/env bash
# Creates or updates the project's virtual environment (.venv):
#   1. the venv itself (python3 -m venv), Python 3.10 - 3.13;
#   2. the pinned requirements (requirements.txt, requirements-ros.txt,
#      requirements-dev.txt): torch, numpy, OpenCV, ROS 2 (rclpy and message
#      wheels), the interface build tools, pytest;
#   3. this package, editable (`pip install --no-deps -e .`: never touches torch;
#      editable_mode=compat: the checkout folder goes on sys.path, see step 4);
#   4. the interfaces (msg/, srv/, action/: `siam_tracker_ros.msg`), built by this
#      repository's own CMakeLists.txt with colcon against the ROS wheels, with
#      SIAM_TRACKER_INSTALL_PYTHON_PACKAGE=OFF (pip owns the Python package), and
#      every test-only interface package under test/ros_packages/; all installed
#      into the venv itself, so `import siam_tracker_ros.msg` works from the venv's
#      Python without further setup. The generated code lands in
#      site-packages/siam_tracker_ros/ without its __init__.py: a portion that the
#      checkout's siam_tracker_ros/__init__.py adds to its __path__ (pkgutil).
# Each step leaves a stamp (a hash of its inputs) in .venv/.siam-stamps and is
# skipped while its inputs are unchanged: a re-run takes about a second.
#
# Usage: scripts/setup_env.sh [all|venv|requirements|package|msgs|check]
#   PYTHON=python3.12 scripts/setup_env.sh    # interpreter for a new venv
#   SIAM_VENV=/path/venv                       # another venv location
#   SIAM_FORCE=1                               # ignore the stamps
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SIAM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
STAMPS=$VENV/.siam-stamps
BUILD=$ROOT/build
REQ_FILES=("$ROOT/requirements.txt" "$ROOT/requirements-ros.txt" "$ROOT/requirements-dev.txt")
TEST_PACKAGES=$ROOT/test/ros_packages   # test-only interface packages (one folder each)
STEP=${1:-all}

log() { printf '[setup_env] %s\n' "$*" >&2; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of the given files' names and contents (missing files hash as absent).
hash_files() {
    local f
    for f in "$@"; do
        if [ -f "$f" ]; then printf '%s\n' "${f#"$ROOT"/}"; cat "$f"; else printf 'missing %s\n' "$f"; fi
    done | sha256sum | cut -d' ' -f1
}
stamp_ok() { [ -z "${SIAM_FORCE:-}" ] && [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_write() { mkdir -p "$STAMPS" && printf '%s\n' "$2" > "$STAMPS/$1"; }

# ---------------------------------------------------------------- system tools
APT_UPDATED=
apt_install() {
    # apt_install PKG... : installs Debian/Ubuntu packages when running as root,
    # otherwise stops with the command to run.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing system packages: $*"
        export DEBIAN_FRONTEND=noninteractive
        if [ -z "$APT_UPDATED" ]; then apt-get update -qq >&2 || true; APT_UPDATED=1; fi
        apt-get install -y -qq --no-install-recommends "$@" >&2 \
            || die "apt-get install $* failed"
    else
        die "missing system packages; install them with: sudo apt-get install $*"
    fi
}

python_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 \
        || die "no '$PYTHON' found: install Python 3.10-3.13 (sudo apt-get install python3 python3-venv python3-dev) or set PYTHON=/path/to/python3.X"
    local ver; ver=$(python_minor "$PYTHON")
    case "$ver" in
        3.10|3.11|3.12|3.13) ;;
        *) die "$PYTHON is Python $ver; the ROS 2 wheels need Python 3.10-3.13 (set PYTHON=python3.X)";;
    esac
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian/Ubuntu split venv/ensurepip into python3-venv / python3.X-venv.
        apt_install "python$ver-venv"
    fi
}

check_build_tools() {
    # What building the interfaces needs: cmake, make, a C/C++ compiler, Python headers.
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || missing+=(g++)
    local inc; inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    if [ ! -f "$inc/Python.h" ]; then
        local ver; ver=$(python_minor "$VENV/bin/python")
        if [ "$inc" = "/usr/include/python$ver" ]; then missing+=("python$ver-dev")
        else die "Python headers not found in $inc (the interpreter $(readlink -f "$VENV/bin/python") has no development files)"
        fi
    fi
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# ------------------------------------------------------------------------ venv
step_venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        return 0
    fi
    if [ -e "$VENV" ]; then
        log "$VENV exists but its Python does not run: recreating it"
        rm -rf "$VENV"
    fi
    check_python
    log "creating $VENV with $PYTHON ($(python_minor "$PYTHON"))"
    "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; die "python -m venv failed"; }
}

# ---------------------------------------------------------------- requirements
# pip with this machine's quiet flags; drops the "Location 'file:///...' is
# ignored" lines that a pip.conf naming absent local indexes prints per package.
pip_run() {
    local rc=0
    "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || rc=$?
    wait 2>/dev/null || true
    return "$rc"
}

step_requirements() {
    local key; key="$(python_minor "$VENV/bin/python") $(hash_files "${REQ_FILES[@]}")"
    stamp_ok requirements "$key" && return 0
    log "installing the pinned requirements (new venv: a few minutes)"
    local args=() f
    for f in "${REQ_FILES[@]}"; do [ -f "$f" ] && args+=(-r "$f"); done
    pip_run install --quiet "${args[@]}" >&2 \
        || die "pip install ${args[*]} failed"
    stamp_write requirements "$key"
}

# --------------------------------------------------------------------- package
step_package() {
    local inputs=("$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")
    local f
    while IFS= read -r f; do inputs+=("$f"); done < <(
        cd "$ROOT" && find resource launch config -type f 2>/dev/null | LC_ALL=C sort | sed "s#^#$ROOT/#")
    local key; key=$(hash_files "${inputs[@]}")
    if stamp_ok package "$key" && [ -x "$VENV/bin/siam-track" ]; then return 0; fi
    log "installing siam_tracker_ros (editable, no dependencies)"
    # --no-build-isolation: use the venv's pinned setuptools, no download.
    # editable_mode=compat: the checkout goes on sys.path (a .pth), where the import
    # system finds it as the regular package `siam_tracker_ros` ahead of the generated
    # interface code (a portion without __init__.py). The default mode's import hook
    # runs after the path search, which would end at that portion.
    local args=(install --no-deps --no-build-isolation --config-settings editable_mode=compat -e "$ROOT")
    pip_run "${args[@]}" --quiet >/dev/null 2>&1 || pip_run "${args[@]}" >&2 \
        || die "pip install -e . failed"
    stamp_write package "$key"
}

# ------------------------------------------------------------------------ msgs
fix_cmake_paths() {
    # The ROS wheels' exported CMake files name the include folders of the
    # machine that built them (/opt/python/cp3XX-cp3XX/...): point them at this
    # venv's Python and numpy headers. Idempotent (nothing left to match).
    local files
    files=$(grep -rlE '/opt/python/cp3[0-9]+' --include='*.cmake' "$VENV/share" 2>/dev/null || true)
    [ -z "$files" ] && return 0
    local pyinc npinc
    pyinc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
    log "rewriting /opt/python/... include paths in $(echo "$files" | wc -l) CMake files of the ROS wheels"
    # shellcheck disable=SC2086
    printf '%s\n' "$files" | xargs -d '\n' sed -i -E \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+t?/lib/python3\.[0-9]+t?/site-packages/numpy/(_core/)?include#$npinc#g" \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+t?/include/python3\.[0-9]+t?#$pyinc#g"
    if grep -rqE '/opt/python/cp3[0-9]+' --include='*.cmake' "$VENV/share"; then
        log "warning: some /opt/python paths are left in $VENV/share/**/*.cmake:"
        grep -rnE '/opt/python/cp3[0-9]+' --include='*.cmake' "$VENV/share" | head -5 >&2
    fi
}

msgs_importable() {
    # The interfaces import, and `siam_tracker_ros` itself is this checkout's package.
    (cd /tmp && "$VENV/bin/python" - "$ROOT" <<'EOF'
import os, sys
import siam_tracker_ros, siam_tracker_ros.msg as m
m.TrackedObject(); m.ConfidenceMap()
package = os.path.dirname(os.path.realpath(siam_tracker_ros.__file__))
sys.exit(0 if package == os.path.join(os.path.realpath(sys.argv[1]), "siam_tracker_ros") else
         f"siam_tracker_ros comes from {package}, not from the checkout")
EOF
    )
}

remove_former_msgs_package() {
    # Before the interfaces moved into this package they were a package of their own,
    # siam_tracker_msgs: remove its install so that stale imports fail loudly.
    [ -d "$VENV/share/siam_tracker_msgs" ] || return 0
    log "removing the former siam_tracker_msgs interfaces from $VENV"
    rm -rf "$VENV/share/siam_tracker_msgs" "$VENV/include/siam_tracker_msgs" \
        "$VENV"/lib/libsiam_tracker_msgs__* "$VENV"/lib/python3*/site-packages/siam_tracker_msgs \
        "$VENV"/lib/python3*/site-packages/siam_tracker_msgs-*.egg-info \
        "$VENV"/share/ament_index/resource_index/*/siam_tracker_msgs "$BUILD/siam_tracker_msgs"
}

step_msgs() {
    local inputs=("$ROOT/CMakeLists.txt" "$ROOT/package.xml" "${REQ_FILES[@]}")
    local f
    while IFS= read -r f; do inputs+=("$f"); done < <(
        cd "$ROOT" && find msg srv action test/ros_packages -type f 2>/dev/null | LC_ALL=C sort | sed "s#^#$ROOT/#")
    local key; key="$(python_minor "$VENV/bin/python") $(hash_files "${inputs[@]}")"
    if stamp_ok msgs "$key" && msgs_importable; then return 0; fi
    check_build_tools
    fix_cmake_paths
    remove_former_msgs_package
    local base_paths=("$ROOT")
    [ -d "$TEST_PACKAGES" ] && base_paths+=("$TEST_PACKAGES")
    local build_log="$BUILD/interfaces.log"
    log "building the interfaces with colcon into $VENV (log: ${build_log#"$ROOT"/})"
    # A clean build: the CMake caches name the venv and the source folders.
    local pkg
    for pkg in $("$VENV/bin/colcon" list --names-only --base-paths "${base_paths[@]}" 2>/dev/null); do
        rm -rf "${BUILD:?}/$pkg"
    done
    mkdir -p "$BUILD"
    local rc=0 t0=$SECONDS
    (
        cd "$ROOT"
        # Only the venv's ROS: a sourced /opt/ros/... would mix with the wheels.
        unset PYTHONPATH COLCON_PREFIX_PATH LD_LIBRARY_PATH _ROS_WHEELS_BOOTSTRAP_COMPLETE
        export VIRTUAL_ENV=$VENV PATH="$VENV/bin:$PATH"
        export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
        "$VENV/bin/colcon" --log-base "$BUILD/colcon-log" build \
            --base-paths "${base_paths[@]}" \
            --build-base "$BUILD" --install-base "$VENV" --merge-install \
            --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
            -DCMAKE_BUILD_TYPE=Release -DSIAM_TRACKER_INSTALL_PYTHON_PACKAGE=OFF
    ) > "$build_log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        log "colcon build failed; the end of $build_log:"
        grep -v "doesn't contain any 'local_setup" "$build_log" | tail -n 40 >&2
        die "building the interfaces failed"
    fi
    # The generated code's __init__.py (empty) and egg-info would make it the package
    # `siam_tracker_ros` in site-packages, ahead of the checkout: pip's editable
    # install owns the package and its metadata, the generated code stays a portion.
    rm -f "$VENV"/lib/python3*/site-packages/siam_tracker_ros/__init__.py
    rm -rf "$VENV"/lib/python3*/site-packages/siam_tracker_ros/__pycache__/__init__.*
    rm -rf "$VENV"/lib/python3*/site-packages/siam_tracker_ros-*.egg-info
    msgs_importable || die "the interfaces were built but do not import: $(msgs_importable 2>&1 | tail -1)"
    stamp_write msgs "$key"
    log "interfaces built and installed in $((SECONDS - t0)) s"
}

step_check() {
    (cd /tmp && "$VENV/bin/python" - <<'EOF'
import importlib, sys
mods = ["torch", "numpy", "cv2", "yaml", "rclpy", "sensor_msgs.msg", "siam_tracker_ros", "siam_tracker_ros.msg"]
bad = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:  # noqa: BLE001
        bad.append(f"{m}: {e}")
print("[setup_env] python", sys.version.split()[0], "-", "all imports ok" if not bad else "FAILED: " + "; ".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
    )
}

run_all() {
    step_venv
    step_requirements
    step_package
    step_msgs
}

main() {
    # One setup at a time per venv (two `make test` started together).
    mkdir -p "$BUILD"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$BUILD/.setup.lock"
        flock 9
    fi
    case "$STEP" in
        all) run_all ;;
        venv) step_venv ;;
        requirements) step_venv; step_requirements ;;
        package) step_package ;;
        msgs) step_msgs ;;
        check) step_check ;;
        *) die "unknown step '$STEP' (all|venv|requirements|package|msgs|check)" ;;
    esac
}

main
