"""Emulators of devices only the bridge reads: one module per aiobmsble plugin, ``<plugin>.py``, ending with
``EMULATOR: type[Emulator] = <its class>``; their frames are built by the pure modules of :mod:`.frames`."""
