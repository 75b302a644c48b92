#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, then runs every check.
# Node 24 comes from the `node` dev dependency; Go builds the test control plane (cached under
# ~/.cache/clara-operator, keyed on its inputs); Python packages go into .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache

echo "== Debian packages: Prometheus (metrics end-to-end test), Chromium (web view test), Lua 5.1/5.4 (Argo CD health check), openssl (the launcher's https tests)"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || [ ! -x /usr/bin/chromium ] \
  || ! command -v lua5.1 >/dev/null || ! command -v lua5.4 >/dev/null || ! command -v openssl >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    prometheus chromium fonts-dejavu-core lua5.1 lua5.4 openssl
fi

echo "== npm ci"
npm ci --no-audit --no-fund

echo "== lint, typecheck, and the Dockerfile (hadolint)"
npm run lint
npm run typecheck
bash scripts/lint-dockerfile.sh

echo "== Python: the venv with the clearml SDK, clearml-agent and pytest (.cache/fidelity-venv)"
bash scripts/python-env.sh

echo "== jest: unit, and integration against the local control plane"
status=0
npm test -- --json --outputFile=.cache/jest-results.json || status=$?
node_modules/.bin/node -e '
  const r = JSON.parse(require("fs").readFileSync(".cache/jest-results.json", "utf8"));
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' || true
[ "$status" -eq 0 ] || exit "$status"

echo "== fidelity: the real clearml SDK and clearml-agent against the ClearML emulator (pytest)"
bash test/fidelity/run.sh

echo "== launcher: the Python launcher under the real clearml SDK and clearml-agent (pytest)"
bash launcher/tests/run.sh
