PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run console test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/playdeck backtest plays/ema_cross.yml

# The operator console on the bundled data: the simulator replays it, a few bars a second.
CONSOLE_PLAY ?= plays/ema_pullback.yml
console: $(STAMP)
	$(VENV)/bin/playdeck console $(CONSOLE_PLAY)

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/compile.py
	$(PY) bench/backtest.py
	$(PY) bench/magnifier.py
	$(PY) bench/emulator.py
	$(PY) bench/live_loop.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
