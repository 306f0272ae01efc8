# Two commands on a fresh machine with only python3:  make demo  and  make test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := out/demo

.PHONY: setup demo test test-fast notebooks-check browser-deps lab bench sample clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name insights-kit --display-name "insights-kit" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

## make demo: ingest the shipped sample, detect, and write the HTML report; prints where it is.
demo: setup
	$(BIN)/insights-kit ingest data/sample --out $(DEMO)/lake
	@# a fresh report store: Insights of an older insights-kit version must not linger beside the new ones
	rm -rf $(DEMO)/report
	$(BIN)/insights-kit report $(DEMO)/lake --out $(DEMO)/report --jobs 2
	@echo
	@echo "Insights events: $(DEMO)/report/insights   (insights-kit query $(DEMO)/report/insights)"
	@echo "Report:          $(CURDIR)/$(DEMO)/report/index.html"

## make test: the whole suite, notebooks and the headless-browser check included.
test: setup browser-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=10 tests
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env notebooks

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow and not browser" tests

# Debian's chromium for the browser test; the test skips (saying why) where it cannot be installed.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } ; \
	  command -v chromium >/dev/null 2>&1 || echo "chromium not available: the browser test will be skipped"; }

## make lab: JupyterLab on the notebooks with the insights-kit kernel.
lab: setup
	$(BIN)/jupyter lab notebooks/

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench_ingest.py --events 1000000
	$(BIN)/python benchmarks/bench_detect.py --events 1000000
	$(BIN)/python benchmarks/bench_peers.py --events 400000 --days 14

# Regenerates the shipped sample (see data/README.md).
sample: setup
	rm -rf data/sample
	$(BIN)/insights-kit simulate --out data/sample --days 9 --seed 7 --scale 0.02 --file-minutes 60

clean:
	rm -rf $(VENV) out
