#!/usr/bin/env bash
# Run every test: set up .venv with the pinned Parquet readers used by the
# interop test (tests/interop/requirements.txt), then `cargo test`.
# Extra arguments go to `cargo test`, e.g. scripts/test.sh -p diaspora-core -- --nocapture
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

REQ=tests/interop/requirements.txt
VENV=.venv
STAMP="$VENV/.requirements.sha256"
PY="$VENV/bin/python"

echo "==> [1/3] python readers ($REQ -> $VENV)"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    echo "    creating $VENV with $(python3 --version 2>&1)"
    if ! python3 -m venv --clear "$VENV"; then
        echo "error: 'python3 -m venv' failed; on Debian install the python3-venv package" >&2
        exit 1
    fi
    have=""
elif [ "$have" != "$want" ]; then
    echo "    $REQ changed; recreating $VENV"
    python3 -m venv --clear "$VENV"
fi

if [ "$have" != "$want" ]; then
    rm -f "$STAMP"
    "$PY" -m pip install --disable-pip-version-check -q -r "$REQ"
    echo "$want" > "$STAMP"
else
    echo "    up to date"
fi

echo "==> [2/3] check imports"
if ! "$PY" -c 'import duckdb, pyarrow, polars; print("    duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__, "polars", polars.__version__)'; then
    echo "error: $PY cannot import duckdb, pyarrow and polars; remove $VENV and rerun" >&2
    rm -f "$STAMP"
    exit 1
fi
export DIASPORA_PYTHON="$PWD/$PY"

echo "==> [3/3] cargo test --workspace --locked $*, then the SQL steps (feature sql)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# DataFusion is a large build: only the crate that evaluates SQL expressions is tested with it.
cargo test -p diaspora-clean --features sql --locked --test sql_steps "$@" 2>&1 | tee -a "$log"
sql_status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && status=$sql_status
set -e
# One closing line over all test binaries (cargo prints one per binary, the last often a doc-test run).
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}' || true)
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}' || true)
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
