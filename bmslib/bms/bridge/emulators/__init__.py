"""Emulators of the families only aiobmsble reads: one module per plugin, each ending with ``EMULATOR``."""
