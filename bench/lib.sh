# Sourced by the benchmark scripts (bench/*.sh, libs/*/benches/*.sh): the start every one of them
# shares, written once.
#
# Sets ZEST_ROOT (the workspace) and ZEST_TARGET (CARGO_TARGET_DIR, default <root>/target), and
# defines
#   require_tools TOOL...     exit unless every TOOL is on PATH;
#   require_python MODULE...  set ZEST_PY to ZEST_PYTHON (default <root>/.venv/bin/python) and
#                             exit unless it exists and imports every MODULE.

ZEST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZEST_TARGET="${CARGO_TARGET_DIR:-$ZEST_ROOT/target}"

require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || {
            echo "$(basename "$0"): $tool is required" >&2
            exit 1
        }
    done
}

require_python() {
    ZEST_PY="${ZEST_PYTHON:-$ZEST_ROOT/.venv/bin/python}"
    if [[ ! -x "$ZEST_PY" ]]; then
        echo "$(basename "$0"): no Python at $ZEST_PY: set ZEST_PYTHON or run scripts/test" \
            "to create the .venv" >&2
        exit 1
    fi
    if (($#)); then
        local modules
        modules="$(IFS=,; echo "$*")"
        "$ZEST_PY" -c "import $modules" || {
            echo "$(basename "$0"): $ZEST_PY cannot import $*" >&2
            exit 1
        }
    fi
}
