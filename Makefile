# Two commands: `make run` starts Attune on SQLite; `make test` runs lint, types and every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck jscheck node-deps pytest system-deps services bench clean catalogs messages

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) catalogs
	$(BIN)/attune serve --data-dir ./data

# Message catalogues (docs/languages.md): `.po` files are the source, committed; `.mo` files are
# compiled here and never committed (a `.po` without a fresh `.mo` is compiled at start instead).
LOCALES := client_web/locales
catalogs: $(STAMP)
	@for po in $(LOCALES)/*/LC_MESSAGES/messages.po; do \
	  mo=$${po%.po}.mo; [ "$$mo" -nt "$$po" ] || $(BIN)/pybabel -q compile -i "$$po" -o "$$mo"; \
	done

# After marking new strings: extract them and merge them into every language's catalogue.
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg --no-location --sort-output --project=Attune -o $(LOCALES)/messages.pot .
	$(BIN)/pybabel -q extract -F babel-js.cfg --no-default-keywords -k t --no-location --sort-output --project=Attune -o $(LOCALES)/js.pot .
	$(BIN)/pybabel -q update --width=100 --ignore-obsolete -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages
	$(BIN)/pybabel -q update --width=100 --ignore-obsolete -i $(LOCALES)/js.pot -d $(LOCALES) -D js

# Debian packages the browser, media and real-network tests need (installed only when missing):
# coturn (`turnserver`) for relay-only calls, nginx and its stream module for the production
# front door (deploy/nginx.conf.template) run natively.
system-deps:
	@missing=""; \
	for pair in chromium:chromium espeak-ng:espeak-ng sox:sox ffmpeg:ffmpeg turnserver:coturn nginx:nginx; do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$$missing libnginx-mod-stream"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# PostgreSQL and Redis run on these machines; start them if they have stopped.
services:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1; then \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; fi
	@if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps services catalogs node_modules/.package-lock.json
	$(BIN)/pytest

# Node.js and npm for the JavaScript type check (installed only when missing).
node-deps:
	@if ! command -v npm >/dev/null; then \
	  echo "Installing Debian packages: nodejs npm"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; \
	fi

# TypeScript from the committed package-lock.json, installed again only when the lockfile changed.
node_modules/.package-lock.json: package-lock.json | node-deps
	npm ci --no-audit --no-fund
	@touch $@

# The browser modules are plain JS with JSDoc types; tsc checks them (jsconfig.json), emits nothing.
jscheck: node_modules/.package-lock.json
	npx --no-install tsc -p jsconfig.json

test: lint typecheck jscheck pytest

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
