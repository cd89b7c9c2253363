# Two commands: `make run` opens the app on the simulated arm, `make test` runs every test headless.
# Both first install the missing Debian packages (teleop_app/system_packages.py: one dpkg-query when
# nothing is missing), then create .venv on first use and reinstall only when pyproject.toml or
# constraints.txt change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MUJOCO_GL ?= egl

.PHONY: run test bench clean-venv system-packages

# Runs before the venv is built (an order-only prerequisite of the stamp): stdlib-only Python.
system-packages:
	@$(PYTHON) teleop_app/system_packages.py --install

$(STAMP): pyproject.toml constraints.txt | system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel of exactly this version is what keeps a multi-GB CUDA build out
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# `make run` opens the operator console on the simulated arm (needs a display).
run: $(STAMP)
	$(BIN)/teleop-app gui

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/loop_timing.py --seconds 20

clean-venv:
	rm -rf $(VENV)
