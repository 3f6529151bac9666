"""A random, seeded fault schedule for simulated devices (soak tests); off unless asked for.

The daemon turns it on when the environment variable ``BATMON_SIM_FAULTS`` is set (see
:func:`from_environment`); it then acts on the emulators the daemon built for ``sim:<id>``
addresses and on nothing else (real devices are never touched). The value is a list of
``name=value`` words separated by spaces or semicolons::

    BATMON_SIM_FAULTS="seed=7 devices=a1,b2,c3 gap=8"

``seed``
    an integer (required). Device ``<id>`` draws its episodes from ``random.Random("<seed>:<id>")``, so
    the sequence of episodes of every device (kinds, lengths, pauses, and the emulator's own choices of
    which chunk to corrupt or drop) is the same in every run with that seed. When an episode starts
    depends on the event loop too, so runs on a loaded machine differ in timing, not in content.
``devices``
    the simulated ids (without ``sim:``) that get faults, comma-separated; default: every simulated device.
    The others stay healthy.
``gap``
    mean seconds between the end of one episode of a device and the start of its next (exponentially
    distributed, at least one second); default 10.

Each device runs one episode at a time, chosen with these weights (lengths drawn uniformly):

==========  ======  ===========================================================================
kind        weight  what the device does
==========  ======  ===========================================================================
disconnect  2       drops the link halfway through its next reply (a frame cut off mid-way)
corrupt     2       for 3-10 s, 30 % of its notification chunks have one byte replaced with 0xFF
                    (a number whose high byte is hit reads as 65 V per cell, 650 V per pack,
                    255 %, thousands of degrees: implausible if it ever got past the checks;
                    one changed byte is always caught by a sum or CRC check)
splice      2       for 3-10 s, 20 % of its chunks are lost: the rest of a frame runs into the next
junk        1       for 3-10 s, half of its replies are preceded by 1-8 random bytes
slow        2       for 5-20 s it answers after 0.2-3 s (beyond some drivers' reply timeouts)
vanish      1       drops the link and stops advertising for 5-60 s, then comes back
==========  ======  ===========================================================================

At the end of an episode the device's knobs go back to the ones its address set (``sim:<id>?latency=0.5``),
except a one-time link drop (``drop_after``), which is not repeated.

Every episode is logged at INFO by ``batmon.sim.faults`` when it starts and when it is over
(``sim fault: <id> vanish for 23.5 s`` ... ``sim fault: <id> vanish over``), so a test can line the
daemon's behaviour up with the faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import SimRadio

_LOG = logging.getLogger("batmon.sim.faults")

ENV_VAR = "BATMON_SIM_FAULTS"
DEFAULT_GAP = 10.0  # [s]
CORRUPT_BYTE = 0xFF

#: (kind, weight)
EPISODES: tuple[tuple[str, int], ...] = (
    ("disconnect", 2), ("corrupt", 2), ("splice", 2), ("junk", 1), ("slow", 2), ("vanish", 1),
)


@dataclass(frozen=True)
class FaultPlan:
    """What :data:`ENV_VAR` asked for."""

    seed: int
    devices: frozenset[str] | None = None  # sim ids; None: every simulated device
    gap: float = DEFAULT_GAP

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Parse the variable's value. Raises ValueError naming the offending word."""
        values: dict[str, str] = {}
        for word in text.replace(";", " ").split():
            name, sep, value = word.partition("=")
            if not sep or name not in ("seed", "devices", "gap") or name in values:
                raise ValueError(f"{ENV_VAR}: unexpected {word!r} (want seed=N [devices=ID,ID...] [gap=S])")
            values[name] = value
        if "seed" not in values:
            raise ValueError(f"{ENV_VAR}: seed=N is required")
        try:
            seed = int(values["seed"])
            gap = float(values.get("gap", DEFAULT_GAP))
        except ValueError:
            raise ValueError(f"{ENV_VAR}: seed must be an integer and gap a number of seconds") from None
        if not 0.0 < gap < 1e6:
            raise ValueError(f"{ENV_VAR}: gap must be a positive number of seconds")
        devices = frozenset(d for d in values["devices"].split(",") if d) if "devices" in values else None
        return cls(seed=seed, devices=devices, gap=gap)

    def problem(self, sim_ids: Iterable[str]) -> str | None:
        """Why the plan does not fit the configured simulated devices ``sim_ids``, or None."""
        missing = sorted((self.devices or frozenset()) - set(sim_ids))
        if missing:
            return f"{ENV_VAR}: no simulated device with id {', '.join(missing)}"
        return None

    async def run(self, radio: SimRadio, sim_ids: Iterable[str], stop: asyncio.Event) -> None:
        """Run the episodes of every target until ``stop`` is set; every knob is reset at the end."""
        wanted = set(sim_ids) if self.devices is None else set(self.devices)
        targets = {i: em for i in sorted(wanted) if (em := radio.by_sim_id(i)) is not None}
        if not targets:
            return
        _LOG.warning("%s is set: random faults on simulated device(s) %s (seed %d)", ENV_VAR,
                     ", ".join(targets), self.seed)
        runners = [DeviceFaults(sim_id, em, random.Random(f"{self.seed}:{sim_id}"), self.gap)
                   for sim_id, em in targets.items()]
        tasks = [asyncio.create_task(r.run(stop), name=f"sim-faults-{r.sim_id}") for r in runners]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for r in runners:
                r.calm()


def from_environment(environ: Mapping[str, str]) -> FaultPlan | None:
    """The plan :data:`ENV_VAR` asks for, or None when it is unset or empty. Raises ValueError."""
    text = environ.get(ENV_VAR, "").strip()
    return FaultPlan.parse(text) if text else None


class DeviceFaults:
    """The episodes of one emulator, one at a time."""

    def __init__(self, sim_id: str, emulator: Emulator, rng: random.Random, gap: float) -> None:
        self.sim_id = sim_id
        self.em = emulator
        self.rng = rng
        self.gap = gap
        emulator.rng = random.Random(rng.random())  # the emulator's choices of chunks follow the seed too
        #: the knobs the device was configured with (``sim:<id>?<knobs>``); a one-time link drop is not repeated
        self._configured = dataclasses.replace(emulator.faults, disconnect_after=None)

    def calm(self) -> None:
        """Every fault knob back to the device's configured ones (the device stays connected or visible as
        it is)."""
        self.em.faults = dataclasses.replace(self._configured)

    async def run(self, stop: asyncio.Event) -> None:
        episodes: dict[str, Callable[[asyncio.Event], Awaitable[None]]] = {
            "disconnect": self._disconnect, "corrupt": self._corrupt, "splice": self._splice, "junk": self._junk,
            "slow": self._slow, "vanish": self._vanish}
        kinds = [k for k, _ in EPISODES]
        weights = [w for _, w in EPISODES]
        while not stop.is_set():
            await self._pause(max(1.0, self.rng.expovariate(1.0 / self.gap)), stop)
            if stop.is_set():
                return
            await episodes[self.rng.choices(kinds, weights)[0]](stop)

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()

    async def _episode(self, kind: str, seconds: float, stop: asyncio.Event, detail: str = "") -> None:
        _LOG.info("sim fault: %s %s for %.1f s%s", self.sim_id, kind, seconds, detail)
        try:
            await self._pause(seconds, stop)
        finally:
            self.calm()
            _LOG.info("sim fault: %s %s over", self.sim_id, kind)

    async def _disconnect(self, stop: asyncio.Event) -> None:
        f = self.em.faults
        f.disconnect_mid_frame = True
        f.disconnect_after = self.em.requests + 1
        await self._episode("disconnect", 5.0, stop, " (at the next reply)")

    async def _corrupt(self, stop: asyncio.Event) -> None:
        self.em.faults.corrupt_chunk = 0.3
        self.em.faults.corrupt_to = CORRUPT_BYTE
        await self._episode("corrupt", self.rng.uniform(3, 10), stop)

    async def _splice(self, stop: asyncio.Event) -> None:
        self.em.faults.drop_chunk = 0.2
        await self._episode("splice", self.rng.uniform(3, 10), stop)

    async def _junk(self, stop: asyncio.Event) -> None:
        self.em.faults.junk = 0.5
        await self._episode("junk", self.rng.uniform(3, 10), stop)

    async def _slow(self, stop: asyncio.Event) -> None:
        latency = self.rng.uniform(0.2, 3.0)
        self.em.faults.latency = latency
        await self._episode("slow", self.rng.uniform(5, 20), stop, f" (answers after {latency:.1f} s)")

    async def _vanish(self, stop: asyncio.Event) -> None:
        self.em.faults.hidden = True
        self.em.drop_link()
        await self._episode("vanish", self.rng.uniform(5, 60), stop)
