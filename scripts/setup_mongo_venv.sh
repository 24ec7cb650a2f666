#!/usr/bin/env bash
# Creates .venv-mongo: a Python 3.13 virtualenv holding the mongoeco wire-protocol server that
# the MongoDB backend's tests talk to (no real mongod can be installed here). Idempotent.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHAMPIPY_MONGO_VENV:-$root/.venv-mongo}"
# The "wire" extra brings pymongo's bson, which the wire-protocol server needs.
spec="mongoeco[wire]==4.11.*"

find_python313() {
    local candidate
    for candidate in "${PYTHON313:-}" python3.13 /root/.pyenv/versions/3.13*/bin/python3.13; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 13))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [ -x "$venv/bin/python" ] \
    && "$venv/bin/python" -c 'import importlib.metadata as m, sys, bson; sys.exit(not m.version("mongoeco").startswith("4.11."))' 2>/dev/null; then
    echo "setup_mongo_venv: $venv already has mongoeco $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mongoeco"))')"
    exit 0
fi

if ! python313="$(find_python313)"; then
    echo "setup_mongo_venv: ERROR: Python >= 3.13 is required for mongoeco (the MongoDB test server)" >&2
    echo "  but none was found (looked for \$PYTHON313, python3.13, /root/.pyenv/versions/3.13*)." >&2
    echo "  Install Python 3.13 (e.g. 'pyenv install 3.13') or set PYTHON313=/path/to/python3.13." >&2
    exit 1
fi

"$python313" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
echo "setup_mongo_venv: $venv ready with mongoeco $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mongoeco"))')"
