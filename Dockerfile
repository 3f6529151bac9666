# batmon: the Home Assistant app (formerly add-on) image, and a standalone image.
# The Dockerfile is the whole build description (no build.yaml): the base image below is Home Assistant's
# multi-arch Python 3.13 image on Alpine, so the Supervisor's local build and a plain `docker build .` pick
# the variant of the machine's architecture (aarch64 or amd64) themselves. BUILD_FROM may still be given
# with --build-arg to try another base.
ARG BUILD_FROM=ghcr.io/home-assistant/base-python:3.13-alpine3.24
FROM ${BUILD_FROM}

# The labels the Supervisor reads. It passes the app's version (BUILD_VERSION) and labels its own builds
# with the machine's architecture; the defaults are for builds outside it (the version is config.yaml's,
# the architectures its `arch` list, both kept in step by tests/test_addon_package.py).
ARG BUILD_VERSION=0.1.0
LABEL \
    io.hass.type="app" \
    io.hass.name="batmon" \
    io.hass.description="Battery management systems over Bluetooth LE to Home Assistant (MQTT) and InfluxDB" \
    io.hass.version="${BUILD_VERSION}" \
    io.hass.arch="aarch64|amd64" \
    org.opencontainers.image.title="batmon" \
    org.opencontainers.image.description="BLE battery management systems to Home Assistant (MQTT) and InfluxDB" \
    org.opencontainers.image.version="${BUILD_VERSION}"

SHELL ["/bin/ash", "-o", "pipefail", "-c"]

# bluetoothctl (bluez) for bt_power_cycle; BlueZ itself runs on the host and is reached over D-Bus.
# hadolint ignore=DL3018
RUN apk add --no-cache bluez

WORKDIR /app

# The pinned runtime requirements, in a virtualenv of their own (pip never touches the image's Python).
# Every one of them installs from a wheel on both architectures (tests/test_wheels.py): no compiler needed.
# PyRIC alone comes as a source archive, pure Python: pip builds its wheel without a compiler.
COPY requirements.txt /app/requirements.txt
RUN python3 -m venv /opt/batmon \
    && /opt/batmon/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        --no-binary=pyric -r /app/requirements.txt

COPY main.py mqtt_util.py run.sh /app/
COPY bmslib/ /app/bmslib/
RUN chmod a+rx /app/run.sh

ENV PATH="/opt/batmon/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# run.sh starts main.py with /data/options.json and the state directory /data; arguments go to main.py.
# No s6 init: the Supervisor's default Docker init forwards signals, and main.py shuts down on SIGTERM.
ENTRYPOINT ["/app/run.sh"]
CMD []
