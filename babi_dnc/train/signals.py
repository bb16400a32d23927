"""SIGINT, SIGTERM and SIGHUP (a closed terminal) during training: finish the step, save, stop (a second Ctrl-C
interrupts at once)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from ..errors import silence, terminal_fds

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


class StopFlag:
    """Set by SIGINT/SIGTERM/SIGHUP (installed in the main thread only); a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self.reason = ""
        self._previous: dict[int, Any] = {}
        self._terminal = terminal_fds()

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.reason = signal.Signals(signum).name
        if signum == getattr(signal, "SIGHUP", None):
            silence(self._terminal)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

