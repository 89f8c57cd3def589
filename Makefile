# Fulcrum make targets: install, demo, run, check, test, bench, lint, docker-build. `make bench` runs the side-by-side benchmark against nginx (bench/README.md).
# `make fuzz` runs the differential request fuzzer long (tests/fuzz/; `make test` runs 200 fixed examples of it).

VENV ?= .venv
PY ?= $(VENV)/bin/python
BENCH_ARGS ?=
IMAGE ?= fulcrum

.PHONY: install demo run test fuzz bench check lint docker-build

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

# The differential fuzzer with random seeds: FUZZ_EXAMPLES examples through a real Fulcrum to an
# h11 backend; every failure class is recorded, shrunk (FUZZ_SHRINK_SECONDS each) and summed up
# at the end, in full in .run/fuzz-report.txt.
FUZZ_EXAMPLES ?= 20000
fuzz: install
	mkdir -p .run
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SURVEY=1 FUZZ_REPORT=.run/fuzz-report.txt \
		$(VENV)/bin/pytest tests/fuzz/test_differential.py -p no:randomly -p no:cacheprovider -q $(ARGS)

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
