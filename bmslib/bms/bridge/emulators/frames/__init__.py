"""Frame building of the bridge's emulators, one module per plugin: pure code (no asyncio, no bleak), fed plain
values, so the tests rebuild real captured frames from the values they carry."""
