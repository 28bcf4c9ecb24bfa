# Two commands matter: `make run` (the whole system) and `make test` (the whole suite, as CI runs it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every pin of [tool.gradphoto.no-deps] in pyproject.toml, for `pip install --no-deps` (see $(STAMP)).
NO_DEPS_PINS := import tomllib; t = tomllib.load(open("pyproject.toml", "rb")); print(" ".join(p for g in t["tool"]["gradphoto"]["no-deps"].values() for p in g))

.PHONY: deps-run deps-test deps-images images images-smoke bench-console bench-notify bench-gateway demo run test lint fmt typecheck pytest bench-codec bench-imaging bench-matching bench-detectors install clean stop help

help:
	@echo "make run          start the gateway, the workers, the embedded database (and RabbitMQ if needed)"
	@echo "make test         lint, type-check and run the whole test suite (real RabbitMQ and nx-27017)"
	@echo "                  (both first install the system packages they need: deploy/local/system-deps.sh)"
	@echo "make demo         drive one made-up student through the journey against 'make run'"
	@echo "make load         simulated students through the whole journey (STUDENTS= RATE= DURATION= KNEE= FAULTS=1) -> bench/RESULTS.md"
	@echo "make bench-codec  decode-rate and latency benchmark of the codec cascade -> bench/RESULTS.md"
	@echo "make bench-imaging time to standardise 12 MP and 2 MP photos vs cv2.imread -> bench/RESULTS.md"
	@echo "make bench-matching  face-comparison time on 2 MP photos vs the face_recognition call sequence -> bench/RESULTS.md"
	@echo "make bench-detectors admission-photo face detector: dlib HOG vs mediapipe, CPU and scores -> bench/RESULTS.md"
	@echo "make bench-notify  subscribe messages/s end to end vs the sandbox's raw rate -> bench/RESULTS.md"
	@echo "make bench-console approve -> next case shown in the console page (headless chromium) vs the bare API calls -> bench/RESULTS.md"
	@echo "make client-e2e   the mini-program's journeys through a Node wx against a stack it starts (JOURNEYS=5)"
	@echo "make images       build every service image from deploy/docker/ with buildah (as root; IMAGES=gateway,... for some)"
	@echo "make images-smoke run the images with podman: probes, then the demo journey to approved (as root)"
	@echo "make fmt          format the code with ruff"

# The virtualenv is (re)built whenever pyproject.toml changes.
# The packages of [tool.gradphoto.no-deps] in pyproject.toml (mediapipe, insightface) are installed with
# --no-deps: their declared requirements would bring opencv-contrib-python / opencv-python, GUI builds
# that need libGL and overwrite the headless cv2 the codec uses, plus jax, sounddevice, onnx, ... that
# nothing here imports. What they really need at run time is pinned in the extras (see pyproject.toml).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $$($(BIN)/python -c '$(NO_DEPS_PINS)')
	@touch $(STAMP)

install: $(STAMP)

# The mini-program's Node tools (jest, miniprogram-simulate, eslint), exactly as miniprogram/package-lock.json pins them.
NODE_STAMP := miniprogram/node_modules/.installed
$(NODE_STAMP): miniprogram/package.json miniprogram/package-lock.json
	@command -v npm >/dev/null || bash deploy/local/system-deps.sh run
	cd miniprogram && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

# The system packages and services (libzbar0, the CJK font, RabbitMQ with its management plugin; for the
# tests also chromium and Node.js): installed as root on Debian/Ubuntu, otherwise the exact command is
# printed and make stops here, before building the virtualenv or collecting any test.
deps-run:
	@bash deploy/local/system-deps.sh run

deps-test:
	@bash deploy/local/system-deps.sh test

# No Node.js step: the mini-program has no runtime npm dependency; its npm packages are the tests' tools.
run: deps-run $(STAMP)
	$(BIN)/python deploy/local/run.py

test: deps-test lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: deps-test $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench-gateway: $(STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || { echo "install wrk: sudo apt-get install -y wrk"; exit 1; }
	$(BIN)/python -m bench.gateway

demo: $(STAMP)
	$(BIN)/python deploy/local/demo.py

bench-codec: $(STAMP)
	$(BIN)/python -m bench.codec

bench-imaging: $(STAMP)
	$(BIN)/python -m bench.imaging

bench-matching: $(STAMP)
	$(BIN)/python -m bench.matching

bench-detectors: $(STAMP)
	$(BIN)/python -m bench.matching.detectors

bench-notify: $(STAMP)
	$(BIN)/python -m bench.notify

bench-console: $(STAMP)
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq chromium >/dev/null; } || { echo "install chromium: sudo apt-get install -y chromium"; exit 1; }
	$(BIN)/python -m bench.console

# The mini-program's contract end-to-end test alone, on a stack of its own; the summary JSON is the last line.
JOURNEYS ?= 5
.PHONY: client-e2e
client-e2e: deps-test $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m tests.client --journeys $(JOURNEYS)

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# SIGTERM to make run's supervisor, waited for: it stops the services (they drain and exit 0, not
# restarted), the sandbox, then the database; a crashed run's leftovers next, the database last
# (deploy/local/stop.sh; LOCAL_VAR_DIR: a run whose state is elsewhere).
stop:
	@bash deploy/local/stop.sh

clean: stop
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# make load: steady arrivals at RATE/s for DURATION s (STUDENTS at most), then the knee search over the rates
# of KNEE; FAULTS=1 injects every fault once instead and fails unless the audit finds nothing lost, duplicated
# or stuck. It starts its own RabbitMQ node and database (bench/load/stack.py), never touching make run's.
.PHONY: load
STUDENTS ?= 400
RATE ?= 1.2
FAULTS ?=
DURATION ?= $(if $(FAULTS),180,90)
KNEE ?= 1.25,1.5,1.75,2,2.5,3,3.5,4
load: $(STAMP)
	$(BIN)/python -m bench.load --students $(STUDENTS) --rate $(RATE) --duration $(DURATION) \
		$(if $(FAULTS),--faults,--knee $(KNEE) --profile)

# Container images from deploy/docker/*.Dockerfile with buildah, run by the smoke test with podman (as root;
# no registry needed: deploy/docker/local/, docs/operations.md "Container images").
IMAGES ?= gateway codec imaging matching notify
comma := ,
deps-images:
	@bash deploy/local/system-deps.sh images

images: deps-images
	bash deploy/docker/local/images.sh $(subst $(comma), ,$(IMAGES))

images-smoke: deps-images $(STAMP)
	$(BIN)/python deploy/docker/local/smoke.py
