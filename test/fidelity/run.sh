#!/usr/bin/env bash
# Fidelity suite: the real clearml SDK and clearml-agent against the ClearML API emulator.
# Uses the venv of scripts/python-env.sh (.cache/fidelity-venv), then runs pytest. Exits
# non-zero on any failure, including "no tests collected" (pytest exit 5).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.cache/fidelity-venv
if [[ ! -x node_modules/.bin/node ]]; then
  echo "fidelity: node_modules/.bin/node is missing; run npm ci first" >&2
  exit 1
fi
bash scripts/python-env.sh >/dev/null

set +e
"$venv/bin/python" -m pytest -c test/fidelity/pytest.ini --rootdir test/fidelity test/fidelity "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "fidelity: no tests were collected" >&2
  exit 1
fi
exit $status
