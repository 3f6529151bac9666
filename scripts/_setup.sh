# Shared set-up for the scripts in this directory (sourced, not run).
# ensure_venv [dev]: create .venv with python3 >= 3.11 and install the pinned requirements
#                    (requirements-dev.txt with "dev"); reinstalls only when a requirements file changed.
# ensure_apt PKG CMD: install the Debian package PKG when the command CMD is missing (looked up in PATH and in
#                    /usr/sbin, /usr/bin and /sbin, where root's tools live outside a user's PATH).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BATMON_VENV:-$ROOT/.venv}"

ensure_venv() {
    local req="$ROOT/requirements.txt"
    [ "${1:-}" = "dev" ] && req="$ROOT/requirements-dev.txt"
    local py="${PYTHON:-python3}"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "batmon needs Python >= 3.11 (found: $("$py" --version 2>&1))" >&2
        exit 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$py" -m venv "$VENV" 2>/dev/null; then
            ensure_apt python3-venv ""
            "$py" -m venv "$VENV"
        fi
    fi
    local stamp="$VENV/.installed-$(basename "$req")"
    local want
    want="$(cat "$ROOT/requirements.txt" "$req" | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
        echo "$want" > "$stamp"
    fi
}

ensure_apt() {
    local pkg="$1" cmd="$2"
    if [ -n "$cmd" ] && { command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ] \
                          || [ -x "/sbin/$cmd" ]; }; then
        return 0
    fi
    if [ -z "$cmd" ] && dpkg -s "$pkg" >/dev/null 2>&1; then
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "need the Debian package '$pkg' (run: apt-get install $pkg as root)" >&2; exit 1
        fi
    fi
    echo "installing $pkg ..." >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1 || {
        $sudo apt-get update -q >/dev/null 2>&1
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null
    }
}
