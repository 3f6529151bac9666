"""A subscriber to ``#`` in a process of its own that counts the messages it receives.

    python -m bench._count --host H --port P --out FILE

Once subscribed, and again at every SIGUSR1, it writes ``{"mono": <monotonic time>, "messages": <so far>}``
to FILE (as bench/_daemon.py writes its counters); SIGTERM ends it. bench/pipeline.py counts MQTT
messages/s with it, so that handling every message of the daemon does not compete for the interpreter
with the subscriber that times the latency (that one subscribes to the cycle states only).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    count = 0

    def write() -> None:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps({"mono": time.monotonic(), "messages": count}))
        os.replace(tmp, out)

    def on_connect(client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe("#", 0)

    def on_subscribe(client: paho.Client, userdata: object, mid: int, codes: object, props: object) -> None:
        write()  # the file exists: SIGUSR1 is handled from now on

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        write()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-count-{time.monotonic_ns()}")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, lambda signum, frame: client.disconnect())
    client.connect(args.host, args.port, 60)
    client.loop_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
