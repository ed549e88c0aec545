#!/usr/bin/env bash
# Runs a tests/k8s check with the tools venv first on PATH: python3 (with pyyaml and jsonschema),
# kubernetes-validate and hadolint, installed by scripts/setup.sh --with-tests into
# ${TRAINGUARD_HOME:-~/.cache/trainguard}/tools-venv (TG_TOOLS_VENV overrides the path).
#   tests/k8s/with_tools.sh COMMAND [ARGS...]
set -euo pipefail

venv=${TG_TOOLS_VENV:-${TRAINGUARD_HOME:-$HOME/.cache/trainguard}/tools-venv}
for tool in python3 kubernetes-validate hadolint; do
  if [[ ! -x $venv/bin/$tool ]]; then
    echo "FAILED: $venv/bin/$tool is missing: run scripts/setup.sh --with-tests (it installs the tools venv)" >&2
    exit 1
  fi
done
export PATH=$venv/bin:$PATH
# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
exec "$@"
