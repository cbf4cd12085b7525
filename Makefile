# siam_tracker_ros — the two commands:
#   make test    # creates/updates .venv (pinned requirements, ROS 2 wheels,
#                # the interfaces from msg/), then runs the test suite
#   make demo    # same environment, then runs siam-demo
# Afterwards `. ./env.sh` gives the same environment in your shell.
#
# Variables: PYTHON=python3.12 (interpreter for a new .venv),
#            PYTEST_ARGS="-k interfaces -x", DEMO_ARGS="--help".

SHELL := /bin/bash
PYTHON ?= python3
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: all env msgs test demo check clean distclean help

all: test

help:
	@sed -n '1,10p' Makefile

env:
	@PYTHON="$(PYTHON)" bash scripts/setup_env.sh all

# Rebuild only the interfaces (after editing msg/, srv/, action/).
msgs:
	@bash scripts/setup_env.sh msgs

check: env
	@bash scripts/setup_env.sh check

test: env
	@. ./env.sh && SIAM_REQUIRE_ROS=1 python -m pytest -rs $(PYTEST_ARGS)

demo: env
	@. ./env.sh && siam-demo $(DEMO_ARGS)

clean:
	rm -rf build log .pytest_cache

distclean: clean
	rm -rf .venv
