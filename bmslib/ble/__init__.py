"""Bluetooth LE: the transport drivers use, the injectable bleak backend, scanning."""
