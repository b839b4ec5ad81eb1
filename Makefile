# The README's two commands, each bootstrapping what it needs on a fresh clone:
#
#   make demo   write a sample 12-page ebook (no Redis, no API key needed)
#   make test   the test suite (installs what it drives if missing and root: redis-server,
#               Chromium + ChromeDriver for the dashboard, Node for the TypeScript client)
#
# Only PyPI is needed: uv comes from pip if it is missing, and uv never downloads a Python
# (it uses the system's, see .python-version and [tool.uv] in pyproject.toml).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
# Where `pip install --user uv` puts the uv binary.
export PATH := $(shell python3 -c 'import site; print(site.getuserbase())' 2>/dev/null)/bin:$(PATH)

.PHONY: help demo test lint chaos env uv redis-server browser node ts-client

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

demo: env  ## Write a sample ebook to out/<ebook-id>.md with the pool, end to end
	uv run --locked ebook-pool demo

test: env redis-server browser ts-client  ## Run the test suite
	uv run --locked pytest

chaos: env redis-server  ## Chaos suite: kill -9, Redis and redeploy storms, payload fuzz (~10 min)
	uv run --locked python -m bench.chaos $(CHAOS_ARGS)

lint: env  ## ruff and mypy (strict)
	uv run --locked ruff check .
	uv run --locked mypy

env: uv  ## Create .venv from uv.lock (project + dev group)
	uv sync --locked

uv:
	@command -v uv >/dev/null 2>&1 || { \
		echo "uv is missing: installing it with pip (user install)"; \
		python3 -m pip install --user --quiet uv 2>/dev/null \
			|| python3 -m pip install --user --quiet --break-system-packages uv; \
	}
	@uv --version

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "redis-server is missing: installing it with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		else \
			echo "redis-server is missing; the tests start their own: install it (e.g. sudo apt-get install redis-server)" >&2; \
			exit 1; \
		fi; \
	}
	@redis-server --version

# Debian's packages, installed when missing and root (as CI runs); else say what to install.
APT_INSTALL = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else echo "missing: $(1) (e.g. sudo apt-get install $(1))" >&2; exit 1; fi

browser:  # the dashboard's browser test drives Debian's headless Chromium, never a download
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
		echo "chromium or chromedriver is missing: installing them with apt-get"; \
		$(call APT_INSTALL,chromium chromium-driver); }

node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "node is missing: installing nodejs and npm with apt-get"; \
		$(call APT_INSTALL,nodejs npm); }

ts-client: node  # the TypeScript client, from its lock file (tests drive it against the pool)
	npm ci --prefix clients/typescript --no-audit --no-fund --loglevel=error
	npm --prefix clients/typescript run build --silent
