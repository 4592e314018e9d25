# One command to run, one to test. Everything installs into a local .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench sweep browser-deps cluster-deps clean

# The compiled fan-out's sources, as setup.py lists them: a change to any rebuilds it.
FANOUT_SOURCES := $(addprefix sfu/protocol/,_fanout.h _fanout.c _fanout_sender.c _fanout_srtp.c \
	_fanout_transport.c _fanout_player.c _fanout_rewrite.c _fanout_send.c _aes.h _aes.c)

$(STAMP): pyproject.toml setup.py $(FANOUT_SOURCES)
	PYTHON=$(PYTHON) sh scripts/install-build-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/litesfu $(ARGS)

cluster-deps:
	sh scripts/install-redis.sh

browser-deps:
	bash scripts/install-chromium.sh
	bash scripts/install-firefox.sh
	bash scripts/install-nftables.sh
	sh scripts/install-hls-js.sh

test: $(STAMP) browser-deps cluster-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 tests/unit
	# Integration tests mostly wait on media: two at a time, a file per worker (its shared
	# servers stay in one process). Browser tests stay one at a time: their namespaces and
	# browsers are heavy, and some share fixed names.
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile tests/integration
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/browser

# This checkout beside the commit before the compiled fan-out, on the same load (bench.compare).
bench: $(STAMP)
	$(BIN)/python -m bench.compare $(ARGS)

sweep: $(STAMP)
	$(BIN)/python -m bench.sweep $(ARGS)

clean:
	rm -rf $(VENV) test-output bench/results
