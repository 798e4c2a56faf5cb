# Sourced by the scripts: which virtual environment and requirements to use.
# HA_VERSION picks a Home Assistant pin from requirements_matrix/ (its own venv);
# unset, the current pin in requirements_test.txt is used from .venv.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${HA_VERSION:-}" ]; then
    VENV="$ROOT/.venv-ha$HA_VERSION"
    REQ="$ROOT/requirements_matrix/$HA_VERSION.txt"
    [ -f "$REQ" ] || { echo "no pin for HA_VERSION=$HA_VERSION in requirements_matrix/" >&2; exit 2; }
else
    VENV="$ROOT/.venv"
    REQ="$ROOT/requirements_test.txt"
fi
