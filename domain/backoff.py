"""How long a command waits before it is decided again on fresh state."""

from __future__ import annotations

import random
import time


def pause(attempt: int) -> None:
    """Jittered exponential back-off, so that racing writers stop meeting in step."""
    time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
