#!/bin/sh
# Starts batmon with the app's options (/data/options.json) and state directory (/data).
#
#   run.sh [ARGS...]        ARGS go to main.py after --config/--state-dir, e.g. `run.sh -v` or `run.sh --demo`
#   run.sh scan|decode ...  main.py's other commands, as they are
#
# When the options name no MQTT broker (mqtt_broker empty) and the environment has none (MQTT_HOST), the
# broker and its credentials come from the Supervisor's MQTT service (GET /services/mqtt with the app's
# SUPERVISOR_TOKEN) and are handed to main.py as MQTT_HOST, MQTT_PORT, MQTT_USER and MQTT_PASSWORD.
# Secrets are never printed.
#
# Works inside the app image and outside it: only sh and the Python that runs batmon are needed.
# Overrides (for other layouts and for tests): BATMON_OPTIONS, BATMON_STATE_DIR, BATMON_PYTHON,
# BATMON_APP_DIR, SUPERVISOR_API (default http://supervisor).
set -eu

app_dir="${BATMON_APP_DIR:-$(cd "$(dirname "$0")" && pwd)}"
options="${BATMON_OPTIONS:-/data/options.json}"
state_dir="${BATMON_STATE_DIR:-/data}"
python="${BATMON_PYTHON:-python3}"
supervisor="${SUPERVISOR_API:-http://supervisor}"

case "${1:-}" in
    scan | decode)
        exec "$python" "$app_dir/main.py" "$@"
        ;;
    run)
        shift  # the default command: named, main.py's `run` would reset the --config given before it
        ;;
esac

# Ask the Supervisor for the MQTT service when needed; prints shell assignments (values quoted) on stdout.
lookup="$("$python" - "$options" "$supervisor" <<'PY'
import json
import os
import shlex
import sys
import urllib.error
import urllib.request

path, base = sys.argv[1], sys.argv[2].rstrip("/")


def say(text):
    print(f"run.sh: {text}", file=sys.stderr)


try:
    with open(path, encoding="utf-8") as f:
        options = json.load(f)
except (OSError, ValueError):
    options = {}
broker = options.get("mqtt_broker") if isinstance(options, dict) else None
if isinstance(broker, str) and broker.strip():
    sys.exit(0)  # the user's own broker
if os.environ.get("MQTT_HOST", "").strip():
    sys.exit(0)  # given by whoever started us
token = os.environ.get("SUPERVISOR_TOKEN", "").strip()
if not token:
    sys.exit(0)  # not under the Supervisor: no broker, samples go to the console
request = urllib.request.Request(f"{base}/services/mqtt", headers={"Authorization": f"Bearer {token}"})
try:
    with urllib.request.urlopen(request, timeout=15) as response:
        doc = json.load(response)
except urllib.error.HTTPError as exc:
    try:
        message = json.load(exc).get("message") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    say(f"the Supervisor has no MQTT service for batmon (HTTP {exc.code}: {message}); install and start the "
        "Mosquitto broker app, or set mqtt_broker")
    sys.exit(0)
except (OSError, ValueError) as exc:
    say(f"cannot ask the Supervisor for the MQTT service: {exc}")
    sys.exit(0)
data = doc.get("data") if isinstance(doc, dict) and doc.get("result") == "ok" else None
if not isinstance(data, dict) or not data.get("host"):
    say("the Supervisor's answer names no MQTT broker; install and start the Mosquitto broker app, "
        "or set mqtt_broker")
    sys.exit(0)
names = {"MQTT_HOST": "host", "MQTT_PORT": "port", "MQTT_USER": "username", "MQTT_PASSWORD": "password"}
for var, key in names.items():
    value = data.get(key)
    if value is not None and str(value) != "":
        print(f"export {var}={shlex.quote(str(value))}")
port = data.get("port") or 1883
login = " with the service's user name and password" if data.get("username") else ""
say(f"MQTT broker from the Home Assistant MQTT service: {data['host']}:{port}{login}")
if data.get("ssl"):
    say("the MQTT service says it uses TLS: set mqtt_tls (and mqtt_ca_cert) if the connection fails")
PY
)" || lookup=""
eval "$lookup"

if [ -f "$options" ]; then
    set -- --config "$options" "$@"
else
    echo "run.sh: no options file at $options; main.py looks for options.yaml or options.json in $(pwd)" >&2
fi
mkdir -p "$state_dir" 2>/dev/null || true
exec "$python" "$app_dir/main.py" --state-dir "$state_dir" "$@"
