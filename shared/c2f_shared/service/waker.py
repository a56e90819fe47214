"""A worker's alarm clock: sleep until woken or until the poll interval passes."""

import asyncio
import contextlib


class Waker:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep until woken (True) or until `seconds` have passed (False). A wake-up that came
        while nobody slept ends the next sleep at once."""
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a cancellation
        # that arrives as the event is set, and a worker being stopped would carry on forever.
        woken = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
                woken = True
        self._event.clear()
        return woken
