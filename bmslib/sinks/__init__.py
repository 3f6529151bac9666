"""Where samples go: the console, MQTT (mqtt_util), InfluxDB."""
