"""batmon entry point: ``python3 main.py [run|scan|decode|types] ...`` (see ``--help``).

Here the sinks are wired in: the App gets their factories and builds the ones its options ask for.
"""

import sys

from bmslib.cli import main
from bmslib.sinks.console import console_sink
from bmslib.sinks.influx import influx_sink
from mqtt_util import mqtt_sink

#: the sinks the daemon may use, in the order each gets an event: MQTT (or, without a broker, the console)
#: and InfluxDB
SINK_FACTORIES = (mqtt_sink, console_sink, influx_sink)

if __name__ == "__main__":
    sys.exit(main(sink_factories=SINK_FACTORIES))
