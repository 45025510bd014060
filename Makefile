# The course's two commands (see README):
#   make lab    set everything up and open the course in JupyterLab
#   make test   set everything up and run every test
# Other targets: make notebooks (re-execute notebooks, store outputs), make figures, make lint.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kdkit-installed

.PHONY: setup lab test unit nbval browser lint notebooks figures clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/

lint: setup
	$(BIN)/ruff check kdkit tests tools notebooks conftest.py

unit: setup
	$(BIN)/python -m pytest -q tests -m "not browser"

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
