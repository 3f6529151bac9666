"""MQTT for Home Assistant, one module per job: topic naming, discovery payloads, the discovery record
kept on disk, the entity table of the docs, and the connection (paho on the asyncio loop). The sink
that uses them is the top-level ``mqtt_util`` (wired in by ``main.py``)."""
