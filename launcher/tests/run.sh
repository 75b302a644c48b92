#!/usr/bin/env bash
# The launcher suite: launcher/clara_launcher.py under the real clearml SDK and clearml-agent
# against the ClearML API emulator, with the fake trainers of launcher/tests/fakes. Uses the venv
# of scripts/python-env.sh (.cache/fidelity-venv). Exits non-zero on any failure, including
# "no tests collected" (pytest exit 5). Extra arguments go to pytest (e.g. -k archives).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.cache/fidelity-venv
if [[ ! -x node_modules/.bin/node ]]; then
  echo "launcher tests: node_modules/.bin/node is missing; run npm ci first" >&2
  exit 1
fi
if ! command -v openssl >/dev/null; then
  echo "launcher tests: openssl is missing (the https source tests make a certificate)" >&2
  exit 1
fi
bash scripts/python-env.sh >/dev/null

set +e
"$venv/bin/python" -m pytest -c test/fidelity/pytest.ini --rootdir launcher/tests launcher/tests "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "launcher tests: no tests were collected" >&2
  exit 1
fi
exit $status
