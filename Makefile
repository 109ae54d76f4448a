# One-command set-up: every target creates .venv when missing and installs into it.
# Re-running is cheap: installs are redone only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LINTED := $(wildcard ebm_course tests benchmarks tools)

.PHONY: help venv test lint lab book browser clean bench

help:
	@echo "make test   create .venv, install, run ruff and the tests (incl. notebooks),"
	@echo "            build the book and check it in headless Chromium"
	@echo "make book   create .venv, install, build the Jupyter Book into book/_build/html"
	@echo "make lab    create .venv, install, start JupyterLab on notebooks/"
	@echo "make test-gpu      on a machine with an NVIDIA GPU (no .venv needed, no internet):"
	@echo "                   the tests, every lesson on CUDA (nbval, quick), the benchmark table"
	@echo "                   and one epoch, in under 9 minutes (benchmarks/gpu.sh); fails at once"
	@echo "                   without CUDA. Log and JSON summary in \$$OUT, else bench_out/"
	@echo "make test-gpu-dry  the same script on the CPU at smoke-test sizes (= DRY=1 make test-gpu)"
	@echo "make gpu-wheels    download into .whl/ the wheels that the GPU machine's Python may lack"
	@echo "                   (nbval, ipykernel, ipywidgets and their needs); test-gpu installs them"

$(PY):
	$(PYTHON) -m venv $(VENV)

# One stamp per extra; the package is installed editable so lessons see local edits.
$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$*]"
	@touch $@

venv: $(VENV)/.installed-test

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

NOTEBOOKS := $(wildcard notebooks/*.ipynb)
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

test: lint book browser
	$(PY) -m pytest
ifneq ($(NOTEBOOKS),)
	EBM_COURSE_QUICK=1 $(PY) -m pytest -p no:cacheprovider $(NBVAL) $(NOTEBOOKS)
endif
	EBM_BOOK_TEST=require $(PY) -m pytest tests/test_book.py

# Headless Chromium and its driver for tests/test_book.py (Debian packages; needs root, as in CI).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	fi

bench: $(VENV)/.installed-test
	$(PY) benchmarks/bench.py

lab: $(VENV)/.installed-lab $(VENV)/.installed-test
	$(VENV)/bin/jupyter lab notebooks/

# MathJax 3 served from the book itself (no CDN): copied from the django-static-mathjax package.
book/_mathjax/es5/tex-mml-chtml.js: | $(VENV)/.installed-book
	$(PY) -c "import mathjax, pathlib, shutil; src = pathlib.Path(mathjax.__file__).parent / 'static/mathjax/es5'; shutil.copytree(src, 'book/_mathjax/es5', dirs_exist_ok=True)"

# Widget views (the lessons' sliders) rendered from the stored widget state, also offline:
# require.js and the @jupyter-widgets/html-manager bundle, fetched from npm at build time.
# One stamp for the scripts and their fonts, so that they are fetched together or not at all.
WIDGETS := book/_widgets/.fetched
WIDGET_FONTS := book/_widgets_extra/notebooks/@jupyter-widgets/html-manager/dist
$(WIDGETS):
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm)
	rm -rf book/_widgets.tmp && mkdir -p book/_widgets.tmp book/_widgets
	cd book/_widgets.tmp && npm pack --silent @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 >/dev/null
	cd book/_widgets.tmp && for t in *.tgz; do tar xzf $$t && mv package $${t%.tgz}; done
	cp book/_widgets.tmp/requirejs-2.3.8/require.js book/_widgets/
	cp book/_widgets.tmp/jupyter-widgets-html-manager-1.0.15/dist/embed-amd.js book/_widgets/
	@# its icon fonts are requested relative to the lesson pages (notebooks/@jupyter-widgets/...)
	mkdir -p $(WIDGET_FONTS)
	cd book/_widgets.tmp/jupyter-widgets-html-manager-1.0.15/dist && \
		cp *.woff *.woff2 *.ttf *.eot *.svg $(CURDIR)/$(WIDGET_FONTS)/
	rm -rf book/_widgets.tmp
	touch $@

book: $(VENV)/.installed-book book/_mathjax/es5/tex-mml-chtml.js $(WIDGETS)
	$(PY) -m ebm_course.pretrained mnist > book/model_card.md
	$(PY) -m ebm_course.pretrained mnist_score > book/score_model_card.md
	$(VENV)/bin/jupyter-book build book/ --all --warningiserror --keep-going

clean:
	rm -rf book/_build .pytest_cache .ruff_cache

# GPU run (benchmarks/gpu.sh). No .venv prerequisite: the GPU machine may have no internet, and
# gpu.sh finds a Python with torch itself ($$PYTHON, .venv/bin/python, python3, python, as it
# documents). The lessons get this Makefile's NBVAL flags. DRY=1: the CPU dry run.
.PHONY: test-gpu test-gpu-dry gpu-wheels
test-gpu:
	NBVAL_FLAGS="$(NBVAL)" bash benchmarks/gpu.sh $(if $(filter-out 0,$(DRY)),--dry-run)

test-gpu-dry:
	NBVAL_FLAGS="$(NBVAL)" bash benchmarks/gpu.sh --dry-run

# Wheels for a GPU machine without internet, for its Python (GPU_PYVER, major.minor) on x86-64
# Linux: nbval, ipykernel, ipywidgets and everything they need. gpu.sh installs, offline, only
# those whose package that Python lacks. Bring .whl/ along (it is git-ignored).
GPU_PYVER ?= 3.12
GPU_WHEELS ?= .whl
GPU_PLATFORMS := manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_26_x86_64 \
	manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 \
	manylinux2014_x86_64 manylinux1_x86_64
gpu-wheels: | $(PY)
	$(PY) -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
		--python-version $(GPU_PYVER) --implementation cp \
		$(addprefix --platform ,$(GPU_PLATFORMS)) -d $(GPU_WHEELS) nbval ipykernel ipywidgets
	@ls $(GPU_WHEELS) | wc -l | xargs echo "wheels in $(GPU_WHEELS)/:"
