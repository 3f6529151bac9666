"""Bluetooth LE, the only layer that imports bleak and its helper libraries: the transport drivers use
(transport.py), passive advertisement listening (adverts.py), the one address matcher (address.py), the
translation of the stack's errors into the project's (radio_errors.py), the injectable bleak backend
(backend.py), the adapter (adapter.py) and `scan` (scan.py)."""
