"""A simulated ESPHome Bluetooth proxy: ESPHome's native API on a loopback port, bridged to the simulated
radio (see :mod:`bmslib.sim.esphome.node`)."""
