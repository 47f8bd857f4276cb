# The two commands of the README: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m devtools.devrun

test: install
	@# Browser tests use Debian's chromium; where it cannot be installed they skip, saying why.
	bash devtools/ensure_chromium.sh || echo "chromium could not be installed: browser tests will skip"
	$(PY) -m devtools.testrun

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: install
	$(PY) -m bench

# Not part of `make test`: ~10 minutes of real processes under faults on private PostgreSQL and Redis;
# writes its table into docs/reliability.md ("## Soak"). Fails on any duplicate, loss, early or overlap.
.PHONY: soak
soak: install
	$(PY) -m bench.soak --doc

lock:
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --strip-extras --extra test --extra dev -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .local
