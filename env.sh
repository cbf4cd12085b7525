# shellcheck shell=sh
# Source me from the repository root:  . ./env.sh
# (bash, zsh or sh; `make test` / scripts/setup_env.sh create .venv first.)
#
# Activates .venv (Python, torch, ROS 2 wheels, the siam_tracker_ros
# interfaces, this package: tracker_node, siam-track, ... on PATH) and sets
# the ROS 2 variables this project relies on. Variables you set before
# sourcing are kept (ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_LOG_DIR,
# FASTDDS_DEFAULT_PROFILES_FILE), except RMW_IMPLEMENTATION: only
# rmw_fastrtps_cpp ships in the wheels.

_siam_root=
if [ -n "${SIAM_TRACKER_ROOT:-}" ]; then
    _siam_root=$SIAM_TRACKER_ROOT
elif [ -n "${BASH_VERSION:-}" ]; then
    # shellcheck disable=SC3028,SC3054
    _siam_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
elif [ -n "${ZSH_VERSION:-}" ]; then
    eval '_siam_root=$(cd "$(dirname "${(%):-%x}")" && pwd)'
elif [ -f ./env.sh ] && [ -f ./setup.py ]; then
    _siam_root=$(pwd)
fi

if [ -z "$_siam_root" ] || [ ! -f "$_siam_root/scripts/setup_env.sh" ]; then
    echo "env.sh: cannot tell the repository root; source it from there (. ./env.sh) or set SIAM_TRACKER_ROOT" >&2
    unset _siam_root
    return 1 2>/dev/null || exit 1
fi
if [ ! -f "$_siam_root/.venv/bin/activate" ]; then
    echo "env.sh: no $_siam_root/.venv yet: run 'make env' (or bash scripts/setup_env.sh) first" >&2
    unset _siam_root
    return 1 2>/dev/null || exit 1
fi
if [ ! -f "$_siam_root/.venv/.siam-stamps/msgs" ]; then
    echo "env.sh: warning: the siam_tracker_ros interfaces are not built yet: run 'make env'" >&2
fi
if [ -n "${ROS_DISTRO:-}" ] && [ "${ROS_DISTRO}" != "kilted" ]; then
    echo "env.sh: warning: a ROS 2 '$ROS_DISTRO' install is sourced in this shell; this venv brings its own ROS 2 (Kilted wheels): use a fresh shell" >&2
fi

# shellcheck disable=SC1091
. "$_siam_root/.venv/bin/activate"

export SIAM_TRACKER_ROOT="$_siam_root"
# The interfaces and this package are installed into the venv prefix; the ament
# index (package share folders, config/launch files) is found there.
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"

# Only rmw_fastrtps_cpp is installed: any other value ends the process.
if [ -n "${RMW_IMPLEMENTATION:-}" ] && [ "$RMW_IMPLEMENTATION" != "rmw_fastrtps_cpp" ]; then
    echo "env.sh: RMW_IMPLEMENTATION=$RMW_IMPLEMENTATION is not installed here; using rmw_fastrtps_cpp" >&2
fi
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp

# Discovery stays on this machine, on one domain per checkout: every terminal that sources
# this file in the same checkout gets the same ROS_DOMAIN_ID (so a second shell sees the
# node of the first), another checkout most likely another one. A ROS_DOMAIN_ID set before
# sourcing is kept (your robot's). The tests pick fresh domains of their own.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
    # Domain IDs whose ports avoid Linux's ephemeral range: 1-101, 215-232 (119 of them).
    _siam_r=$(printf '%s' "$_siam_root" | cksum | cut -d' ' -f1)
    _siam_r=$(( _siam_r % 119 ))
    if [ "$_siam_r" -lt 101 ]; then ROS_DOMAIN_ID=$(( _siam_r + 1 )); else ROS_DOMAIN_ID=$(( _siam_r - 101 + 215 )); fi
    unset _siam_r
fi
export ROS_DOMAIN_ID

# Every ROS process writes a log file.
export ROS_LOG_DIR="${ROS_LOG_DIR:-$_siam_root/log/ros}"

# 16 MB shared-memory segment: 640x480 and 1280x720 images go over SHM (the
# 512 KB default sends them over UDP, where best effort drops half).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_siam_root/config/fastdds_profile.xml}"

unset _siam_root
