# Fulcrum make targets: install, demo, run, check, test, bench, lint, docker-build. `make bench` runs the side-by-side benchmark against nginx (bench/README.md).

VENV ?= .venv
PY ?= $(VENV)/bin/python
BENCH_ARGS ?=
IMAGE ?= fulcrum

.PHONY: install demo run test bench check lint docker-build

$(VENV)/bin/python:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -e '.[test]'

install:
	./scripts/setup.sh

# Three example backends behind Fulcrum with config.yaml (Ctrl-C stops all).
demo:
	./scripts/demo.sh

run: install
	$(VENV)/bin/fulcrum run --config config.yaml

check: install
	$(VENV)/bin/fulcrum check --config config.yaml

# Everything the tests need is installed first; extra pytest flags: make test ARGS="-k routing".
test:
	./scripts/test.sh $(ARGS)

# Extra flags: make bench BENCH_ARGS="--quick" (see .venv/bin/python bench/run.py --help).
bench: $(VENV)/bin/python
	$(PY) bench/run.py $(BENCH_ARGS)

# ruff with the rules in ruff.toml; ruff is installed into the venv when missing.
lint: install
	@[ -x $(VENV)/bin/ruff ] || $(VENV)/bin/pip install --quiet --disable-pip-version-check ruff
	$(VENV)/bin/ruff check src tests bench examples scripts

# The container image (Dockerfile); docker-compose.yml runs it with three example backends.
docker-build:
	docker build -t $(IMAGE) .
