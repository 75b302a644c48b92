#!/usr/bin/env bash
# The Python environment of the tests: a venv under .cache/fidelity-venv with the real clearml SDK,
# clearml-agent and pytest (test/fidelity/requirements.txt). Idempotent; prints the venv's path.
# Used by the fidelity and launcher suites and by the integration tests that run a real agent.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cache/fidelity-venv
mkdir -p .cache
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r test/fidelity/requirements.txt >&2
echo "$PWD/$venv"
