"""Victron SmartShunt / BMV protocol, sans-IO: the GATT service (``gatt``) and the encrypted Instant
Readout advertisements (``advertisement``)."""
