#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, then runs every check.
# Node 24 comes from the `node` dev dependency; Go builds the test control plane (cached).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== npm ci"
npm ci --no-audit --no-fund
echo "== lint and typecheck"
npm run lint
npm run typecheck
echo "== jest (unit and integration against the local control plane)"
npm test
