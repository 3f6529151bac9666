"""State files (meters, algorithm state): JSON written atomically, never silently lost.

Writing: the document goes to a temporary file in the same directory, which is flushed and fsynced,
then renamed over the old file, and the directory is fsynced, so after a crash or power cut the file
is either the old or the new version, complete.

Reading: a missing file means "nothing yet". A file that cannot be read or parsed is moved aside as
``<name>.corrupt-<UTC timestamp>`` and one error line says what was lost; only then does the caller
start from zero. If it cannot even be moved aside, nothing is ever written over it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

_ALIAS_LINE = re.compile(rb'^ {0,2}"((?:[^"\\]|\\.){1,80})"\s*:\s*\{', re.MULTILINE)


def top_level_keys_hint(raw: bytes) -> str:
    """The keys that look like top-level entries of an ``indent=2`` JSON object (for the loss message)."""
    keys = [m.group(1).decode("utf-8", "replace") for m in _ALIAS_LINE.finditer(raw)]
    keys = list(dict.fromkeys(keys))
    if not keys:
        return ""
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    return f"entries that look like {', '.join(keys[:10])}{more}"


class StateFile:
    """One JSON state file. ``load`` returns the top-level mapping (None when absent or unusable)."""

    def __init__(self, path: Path, *, log: Log, clock: Callable[[], float] = time.time,
                 describe: Callable[[bytes], str] = top_level_keys_hint) -> None:
        self.path = path
        self.log = log
        self.clock = clock
        self.describe = describe
        self.blocked = False  # True: an unreadable file we could not move aside; never overwrite it
        self._failing: str | None = None  # the last save error logged
        self._lock = threading.Lock()  # saves may run in worker threads; one at a time

    # --- reading ---
    def load(self) -> dict[str, Any] | None:
        self._remove_stale_temp_files()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._set_aside(f"cannot be read ({exc.strerror or exc})", None)
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            why = "is empty" if not raw.strip() else f"is not valid JSON ({_first_line(exc)})"
            self._set_aside(why, raw)
            return None
        if not isinstance(data, dict):
            self._set_aside(f"holds {type(data).__name__}, not a JSON object", raw)
            return None
        return data

    def _set_aside(self, why: str, raw: bytes | None) -> None:
        """Move the file aside and say what was lost (``raw``: its content, None when it could not be read)."""
        if raw is None:
            lost = "its whole content"
        else:
            hint = self.describe(raw) if raw else ""
            lost = f"{len(raw)} bytes" + (f" ({hint})" if hint else "")
        try:
            written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.path.stat().st_mtime))
        except OSError:
            written = "unknown"
        aside = self._aside_name()
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            self.blocked = True
            self.log.error(  # noqa: TRY400  (one line that says what to do; a traceback would not help)
                "state file %s %s and cannot be moved aside (%s); it will not be overwritten: "
                           "fix or remove it and restart. Lost for now: %s, last written %s",
                           self.path, why, exc.strerror or exc, lost, written)
            return
        self.log.error("state file %s %s: moved to %s; lost: %s, last written %s; starting from zero",
                       self.path, why, aside.name, lost, written)

    def keep_copy(self) -> Path | None:
        """Copy the file as it is to ``<name>.corrupt-<timestamp>`` (when only parts of it were unusable)."""
        aside = self._aside_name()
        try:
            shutil.copy2(self.path, aside)
        except OSError:
            return None
        return aside

    def _aside_name(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        return candidate

    def _remove_stale_temp_files(self) -> None:
        """Temporary files left by a crash mid-write (ours, and the add-on we replace's) are incomplete copies."""
        with contextlib.suppress(OSError):
            for tmp in self.path.parent.glob(f"{glob_escape(self.path.name)}.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    # --- writing ---
    def save(self, doc: Mapping[str, Any]) -> bool:
        """Write ``doc`` atomically and durably. False (and one log line per new error) when it failed."""
        if self.blocked:
            return False
        try:
            data = (json.dumps(doc, indent=2) + "\n").encode()
            with self._lock:
                write_atomically(self.path, data)
        except (OSError, TypeError, ValueError) as exc:
            message = str(exc) if not isinstance(exc, OSError) else (exc.strerror or str(exc))
            if message != self._failing:
                self.log.error(  # noqa: TRY400  (one line per new error; a traceback would not help)
                    "cannot write state file %s: %s (retrying at the next save)", self.path, message)
                self._failing = message
            return False
        if self._failing is not None:
            self.log.info("state file %s written again", self.path)
            self._failing = None
        return True


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over ``path``, fsync of the directory."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms without directory handles (the rename is still atomic)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
