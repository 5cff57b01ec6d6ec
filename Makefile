# Two commands on a fresh machine (Python 3.11 + pip):
#   make demo   - installs into .venv, then imports the bundled sample sheets into local simulators
#   make test   - installs into .venv (with test tools), then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install bench lock schema clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/booking-import demo
	@echo
	@echo "Try the web page next: $(VENV)/bin/booking-import web --demo  (it prints where to open it and a demo account)"

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The lint and type gate (pyproject.toml [tool.ruff], [tool.mypy]); `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check flows tests bench scripts docs
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

# Regenerate mappings/mapping.schema.json from the mapping model.
schema: $(STAMP)
	$(PY) -m flows schema > mappings/mapping.schema.json

clean:
	rm -rf $(VENV) out .pytest_cache build *.egg-info
