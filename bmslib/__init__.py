"""batmon: BLE battery management systems to Home Assistant (MQTT), InfluxDB and energy meters."""

__version__ = "0.1.0"
