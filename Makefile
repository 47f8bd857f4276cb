# The two commands of the README: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench lock clean fuzz

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

# Not part of `make test`: ~10 minutes of real processes under faults and outages on private PostgreSQL
# and Redis; writes its table into docs/reliability.md ("## Soak"). Fails on any duplicate, loss, early
# or overlap, a session open twice at once, or a resend after "Telegram" forgot its random_id.
.PHONY: soak
soak: install
	$(PY) -m bench.soak --doc

# Not part of `make test` (which runs the fuzz tests derandomized: the same examples on every run).
# Explores with fresh examples: hypothesis profile "explore", FUZZ_SCALE (default 3) times the CI
# counts, a random seed printed before and after. Rerun what it found with the same seed and scale:
# `make fuzz FUZZ_SEED=<seed> FUZZ_SCALE=<scale>` (pytest's --hypothesis-seed=<seed>), or paste the
# printed @reproduce_failure(...) onto the failing test.
fuzz: install
	@seed=$${FUZZ_SEED:-$$($(PY) -c 'import secrets; print(secrets.randbelow(2**32))')}; \
	scale=$${FUZZ_SCALE:-3}; \
	echo "make fuzz: --hypothesis-seed=$$seed FUZZ_SCALE=$$scale"; \
	HYPOTHESIS_PROFILE=explore FUZZ_SCALE=$$scale $(PY) -m devtools.testrun tests/test_fuzz_webhook.py \
		-q -s -p no:cacheprovider --hypothesis-show-statistics --hypothesis-seed=$$seed; \
	status=$$?; \
	echo "make fuzz: exit $$status; rerun with --hypothesis-seed=$$seed: make fuzz FUZZ_SEED=$$seed FUZZ_SCALE=$$scale"; \
	exit $$status

lock:
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --strip-extras --extra test --extra dev -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .local
