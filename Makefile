# The course's two commands (see README):
#   make lab    set everything up and open the course in JupyterLab
#   make test   set everything up and run every test
# Other targets: make quick (the fast tests, under a minute), make notebooks (re-execute
# notebooks, store outputs), make figures, make lint.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kdkit-installed
# Extra arguments for `jupyter lab`, e.g. make lab LAB_ARGS="--no-browser --port 8899"
# (in a container, add --ip 0.0.0.0 and publish the port to open it from the host).
LAB_ARGS ?=
# Jupyter refuses to start as root unless told to (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test unit quick nbval browser lint notebooks figures bench g2p-teacher clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[all]"
	touch $(STAMP)

lab: setup
	@echo "JupyterLab prints the URL to open below: http://127.0.0.1:8888/lab?token=... (the port may differ)."
	env $$($(BIN)/python tools/cpu_arithmetic.py) $(BIN)/jupyter lab notebooks/ $(ALLOW_ROOT) $(LAB_ARGS)

lint: setup
	$(BIN)/ruff check kdkit tests tools benchmarks notebooks conftest.py

# Speed and memory as ratios measured side by side (benchmarks/bench.py; minutes on 2 cores).
bench: setup
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# The G2P teacher notebook 06 loads (notebooks/assets/g2p_teacher, under 5 MB): the cpu preset's
# teacher run, about 5 minutes on one core (tools/make_g2p_teacher.py; a test runs its smoke form).
g2p-teacher: setup
	$(BIN)/python tools/make_g2p_teacher.py

# Every test but the browser ones, slow ones included; two at a time (a few minutes on 2 cores).
unit: setup
	$(BIN)/python -m pytest -q tests -m "not browser" -n 2

# The fast tests (every kdkit module is covered): under a minute on a 2-core machine.
quick: setup
	$(BIN)/python -m pytest -q tests -m "not slow and not browser"

# MPLBACKEND=Agg in the environment would suppress every inline plot and fail nbval.
nbval: setup
	env -u MPLBACKEND $(BIN)/python -m pytest -q --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -n 2 --dist loadfile notebooks

# JupyterLab in headless Chromium (Debian: apt-get install -y chromium); skipped without it.
browser: setup
	env -u MPLBACKEND $(BIN)/python -m pytest -q tests -m browser

test: lint unit nbval browser

notebooks: setup
	env -u MPLBACKEND $(BIN)/python tools/run_notebooks.py $(NB)
	$(BIN)/python tools/make_figures.py

figures: setup
	$(BIN)/python tools/make_figures.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
