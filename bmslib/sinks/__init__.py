"""Where samples go: the sink interface, the console and InfluxDB (the MQTT sink is the top-level
``mqtt_util``; ``main.py`` hands the App the factories of all three)."""
