# Two commands do everything on a fresh machine with python3:
#   make run   - install, prepare weights and images, execute the notebooks into outputs/
#   make test  - install, prepare, then the whole suite (pytest + nbval on every notebook,
#                and the installed-wheel check)
#   make nbgrader-check - the course through the real nbgrader (CI runs it after make test;
#                a target of its own, so that make test stays under 20 minutes)
#   make browser-check - the notebooks' widget cells moved in JupyterLab in headless Chromium
#                (Debian's, installed with apt-get when missing); screenshots in build/browser-check
#   make classroom-check - a class on a real JupyterHub with nbgrader's exchange: an instructor
#                and three students (Unix accounts), release to feedback, and a browser; as root
# Weights and sample images go to the per-user cache (~/.cache/nbutils), or $NBUTILS_CACHE_DIR.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
NOTEBOOKS := $(wildcard notebooks/*.ipynb)
# Notebooks run with their own folder as working directory; their results go here.
export NBUTILS_OUTPUT_DIR := $(CURDIR)/outputs
# The sources of the notebooks are notebooks/*.py (jupytext); the suite runs each stored
# notebook small, its parameters cell overridden by the one preset, nbutils/lab/presets/ci.yaml.
PRESET := ci
NBVAL_DIR := build/nbval
LINTED := nbutils tests benchmarks tools notebooks
# nbgrader and its Jupyter pins live in a venv of their own; its notebooks run on $(PY).
NBGRADER_VENV := .venv-nbgrader
NBGRADER_REQUIREMENTS := tools/nbgrader-requirements.txt
NBGRADER_CHECK = $(PY) tools/nbgrader_roundtrip.py --nbgrader-venv $(NBGRADER_VENV)

# pytest-xdist workers for `make test` (each notebook stays on one worker: --dist loadfile).
TEST_WORKERS ?= 2
NBVAL_OPTIONS := --nbval-lax --nbval-current-env -p no:cacheprovider

define prepare-nbval
	rm -rf $(NBVAL_DIR)
	$(PY) tools/notebooks.py prepare --preset $(PRESET) $(NBVAL_DIR) $(NOTEBOOKS)
endef

.PHONY: all venv prepare run test unit nbval notebooks lint wheel-check benchmark clean student \
	nbgrader-venv nbgrader-check browser-check classroom-check

all: run

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt -c constraints.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@! $(PIP) show torch >/dev/null 2>&1 || { echo "torch got installed: refusing" >&2; exit 1; }
	touch $@

venv: $(VENV)/.installed

$(NBGRADER_VENV)/.installed: $(NBGRADER_REQUIREMENTS)
	rm -rf $(NBGRADER_VENV)
	$(PYTHON) -m venv $(NBGRADER_VENV)
	$(NBGRADER_VENV)/bin/python -m pip install --quiet -r $(NBGRADER_REQUIREMENTS)
	@! $(NBGRADER_VENV)/bin/python -m pip show torch >/dev/null 2>&1 || \
		{ echo "torch got installed: refusing" >&2; exit 1; }
	touch $@

nbgrader-venv: $(NBGRADER_VENV)/.installed

prepare: venv
	@command -v bwrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || echo 'warning: bubblewrap (bwrap) is missing and could not be installed: the grader will refuse to grade' >&2
	$(PY) -m nbutils.prepare

run: prepare
	@mkdir -p outputs
	$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
		--output-dir outputs $(NOTEBOOKS)
	@echo
	@echo "Results are in outputs/:"
	@ls -1 outputs | sed 's/^/  outputs\//'

unit: prepare
	$(PY) -m pytest -q tests

nbval: prepare
	$(prepare-nbval)
	$(PY) -m pytest -q $(NBVAL_OPTIONS) $(NBVAL_DIR)/*.ipynb

# Rebuild every notebooks/*.ipynb from its .py source and execute it at its defaults.
notebooks: prepare
	$(PY) tools/notebooks.py run

# One pytest run for the unit tests and the notebooks, on $(TEST_WORKERS) workers; the
# notebooks come first so that the longest starts first.
test: prepare
	$(PY) -m ruff check $(LINTED)
	$(prepare-nbval)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(NBVAL_OPTIONS) \
		$(NBVAL_DIR)/*.ipynb tests
	tests/installed/check_wheel.sh $(PY)

# The wheel, installed (not editable) into a fresh environment and used from another folder.
wheel-check: venv
	tests/installed/check_wheel.sh $(PY)

lint: venv
	$(PY) -m ruff check $(LINTED)

benchmark: prepare
	$(PY) benchmarks/step_time.py
	$(PY) benchmarks/face_encoder_speed.py
	$(PY) benchmarks/face_pipeline.py
	$(PY) benchmarks/face_search.py
	$(PY) benchmarks/face_scale.py
	$(PY) benchmarks/nst_speed.py
	$(PY) benchmarks/feedforward.py
	$(PY) benchmarks/one_shot.py

# The course as nbgrader assignments, released and autograded by the real nbgrader.
nbgrader-check: prepare nbgrader-venv
	$(NBGRADER_CHECK)

# The widgets in a real browser (tools/browser_check.py): first its own tests on scratch
# notebooks, then every notebook with a `widget` cell, in JupyterLab in Debian's chromium
# (Playwright drives it; its own browser download is never used).
BROWSER_CHECK_DIR := build/browser-check
# A figure that reaches the page blank fails it (nbutils._internal.figures says why it did).
browser-check: prepare
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	NBUTILS_BROWSER_TESTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_browser_check.py
	$(PY) tools/browser_check.py --out $(BROWSER_CHECK_DIR)

# A class, for real (tools/classroom_check.py, as root): JupyterHub and its proxy
# (configurable-http-proxy from npm, pinned by tools/classroom/package-lock.json), nbgrader's
# exchange, one instructor and three students, a browser; nothing left behind. Screenshots go
# to outputs/classroom.
CLASSROOM_PROXY := tools/classroom/node_modules/.bin/configurable-http-proxy
$(CLASSROOM_PROXY): tools/classroom/package.json tools/classroom/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tools/classroom --no-audit --no-fund --silent
	touch $@

classroom-check: prepare $(CLASSROOM_PROXY)
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) tools/classroom_check.py --out outputs/classroom

student: venv
	$(PY) -m nbutils.lab.exercises --out student notebooks/art_generation.py notebooks/face_recognition.py

clean:
	rm -rf outputs build .pytest_cache $(NBGRADER_VENV)
