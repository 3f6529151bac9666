# batmon: the Home Assistant add-on image, and a standalone image.
# The Supervisor passes the base image of the machine's architecture (build.yaml) as BUILD_FROM; a plain
# `docker build .` uses the amd64 one (or pass --build-arg BUILD_FROM=... for another).
ARG BUILD_FROM=ghcr.io/home-assistant/amd64-base-python:3.13-alpine3.22
FROM ${BUILD_FROM}

SHELL ["/bin/ash", "-o", "pipefail", "-c"]

# bluetoothctl (bluez) for bt_power_cycle; BlueZ itself runs on the host and is reached over D-Bus.
# hadolint ignore=DL3018
RUN apk add --no-cache bluez

WORKDIR /app

# The pinned runtime requirements, in a virtualenv of their own (pip never touches the image's Python).
COPY requirements.txt /app/requirements.txt
RUN python3 -m venv /opt/batmon \
    && /opt/batmon/bin/pip install --no-cache-dir --disable-pip-version-check -r /app/requirements.txt

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
