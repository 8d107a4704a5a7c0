"""A daemon thread that runs one task every `interval` seconds while the service is up."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    def __init__(self, name: str, interval: float, task: Callable[[], object]) -> None:
        self.interval = interval
        self.task = task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.task()
            except Exception:  # try again next time; the failure is logged
                logging.getLogger(__name__).exception("%s failed", self._thread.name)
