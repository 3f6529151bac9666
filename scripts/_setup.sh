# Shared set-up for the scripts in this directory (sourced, not run).
# find_python: a CPython 3.13 (the app image's Python, batmon's floor: aiobmsble needs 3.12 or newer): PYTHON if
#              set, else python3 when it is 3.13 or newer, else pyenv's 3.13.0 (installed with pyenv when
#              missing; its shims are not used: they need a shell set up for pyenv), else python3.13 on PATH.
# ensure_venv [dev]: create .venv with find_python's interpreter and install the pinned requirements
#                    (requirements-dev.txt with "dev"); reinstalls only when a requirements file changed.
# ensure_apt PKG CMD: install the Debian package PKG when the command CMD is missing (looked up in PATH and in
#                    /usr/sbin, /usr/bin and /sbin, where root's tools live outside a user's PATH).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BATMON_VENV:-$ROOT/.venv}"

PY_FLOOR_VERSION=3.13.0

is_floor_python() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    if is_floor_python python3; then command -v python3; return; fi
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root="$(pyenv root)"
        if [ ! -x "$root/versions/$PY_FLOOR_VERSION/bin/python" ]; then
            echo "installing Python $PY_FLOOR_VERSION with pyenv (a few minutes) ..." >&2
            pyenv install --skip-existing "$PY_FLOOR_VERSION" >&2
        fi
        echo "$root/versions/$PY_FLOOR_VERSION/bin/python"
        return
    fi
    command -v python3.13 || echo python3.13
}

ensure_venv() {
    local req="$ROOT/requirements.txt"
    [ "${1:-}" = "dev" ] && req="$ROOT/requirements-dev.txt"
    if [ -x "$VENV/bin/python" ] && ! is_floor_python "$VENV/bin/python"; then
        echo "$VENV has $("$VENV/bin/python" --version 2>&1), batmon needs 3.13 or newer: making it again" >&2
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        py="$(find_python)"
        if ! is_floor_python "$py"; then
            echo "batmon needs Python 3.13 or newer (found: $("$py" --version 2>&1)); set PYTHON" >&2
            exit 1
        fi
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
