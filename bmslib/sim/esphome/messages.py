"""ESPHome's native API messages, as aioesphomeapi ships them (generated protobuf code without type
information: one typed-as-Any name for the modules that build and read them)."""

from __future__ import annotations

from typing import Any

from aioesphomeapi import api_pb2

pb: Any = api_pb2
