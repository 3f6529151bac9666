"""BMS families: each subpackage is one family, found by :mod:`bmslib.registry` without a list to edit.

A family's package holds its metadata (``family()`` in its ``__init__``), its sans-IO protocol
(``protocol``), its device side for the simulator (``emulator``) and, where the shared
request/response flow is not enough, its own ``driver``. Families do not import each other.
"""
