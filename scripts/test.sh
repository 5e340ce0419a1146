#!/usr/bin/env bash
# Runs the whole test suite (lit + FileCheck, unit tests, package tests) on
# an existing build/.
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j "$(nproc)"
