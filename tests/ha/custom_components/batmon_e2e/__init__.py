"""Test-only Home Assistant integration, copied into the end-to-end test's config directory.

The recorder compiles statistics (and so creates statistics metadata, which the Energy dashboard
needs) only at the end of each 5-minute period. The service ``batmon_e2e.compile_statistics`` runs
the recorder's own statistics task for the period in progress now, so the test need not wait up to
five minutes. It changes nothing else: the statistics come from the recorder and the sensor
integration exactly as at a period's end (the real run for that period then finds it done).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.components.recorder import get_instance, statistics
from homeassistant.components.recorder.tasks import StatisticsTask
from homeassistant.core import HomeAssistant, ServiceCall

DOMAIN = "batmon_e2e"


async def async_setup(hass: HomeAssistant, config: dict[str, Any]) -> bool:
    async def compile_statistics(call: ServiceCall) -> None:
        recorder = get_instance(hass)
        period_in_progress = statistics.get_start_time() + timedelta(minutes=5)
        recorder.queue_task(StatisticsTask(period_in_progress, False))
        await recorder.async_block_till_done()

    hass.services.async_register(DOMAIN, "compile_statistics", compile_statistics)
    return True
