#!/usr/bin/env bash
# The package as a teaching lab installs it: build the wheel, install it (not editable) with
# its declared dependencies into a fresh environment, then, from a folder outside the
# checkout: `python -m nbutils.prepare` into an empty cache, and the main verbs (smoke.py).
# Checks that nothing is written inside the installed package, and that a prepared cache is
# only read (as when a lab mounts it read-only).
#   usage: tests/installed/check_wheel.sh PYTHON   (a Python with pip and setuptools)
set -euo pipefail
python=${1:-python3}
checkout=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbutils-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$tmp/dist" "$checkout"
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
# Declared dependencies only; the constraints pin them to the versions the suite runs on.
"$tmp/venv/bin/python" -m pip install --quiet -c "$checkout/constraints.txt" "$tmp"/dist/nbutils-*.whl
! "$tmp/venv/bin/python" -m pip show torch >/dev/null 2>&1 || { echo "torch got installed" >&2; exit 1; }

mkdir -p "$tmp/work" && cd "$tmp/work"
export NBUTILS_CACHE_DIR="$tmp/cache"
unset NBUTILS_OUTPUT_DIR
snapshot() {  # files (with mtimes) under a folder, as JSON
    "$tmp/venv/bin/python" - "$1" <<'PY'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
print(json.dumps({str(p.relative_to(root)): p.stat().st_mtime_ns
                  for p in sorted(root.rglob("*")) if p.is_file()}))
PY
}
package=$("$tmp/venv/bin/python" -c \
    "import importlib.util as u; print(u.find_spec('nbutils').submodule_search_locations[0])")
snapshot "$package" > "$tmp/package-before.json"

"$tmp/venv/bin/python" -m nbutils.prepare
snapshot "$NBUTILS_CACHE_DIR" > "$tmp/cache-before.json"
"$tmp/venv/bin/python" "$checkout/tests/installed/smoke.py" "$tmp/package-before.json"
snapshot "$NBUTILS_CACHE_DIR" > "$tmp/cache-after.json"
cmp -s "$tmp/cache-before.json" "$tmp/cache-after.json" \
    || { echo "the prepared cache was written to after prepare" >&2; exit 1; }
echo "wheel check passed: installed, prepared and used from $tmp/work"
