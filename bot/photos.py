"""Run the emotion reader off the event loop, a bounded number of photos at a time."""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time

from classifier import EmotionReader, annotate


@dataclasses.dataclass(frozen=True)
class Result:
    faces: list  # classifier.FaceEmotion, numbered from 1 in this order
    jpeg: bytes | None  # the annotated photo; None when no face was found
    milliseconds: int


class PhotoReader:
    """Analyse photos in worker threads.

    At most `workers` photos are analysed at once, and at most one per chat, so a chat that
    sends many or very large photos occupies one worker and the other chats get the rest.
    Photos held in memory, downloaded or being analysed, are bounded by the slots.
    """

    def __init__(self, reader: EmotionReader, workers=2):
        self.reader = reader
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="inference")
        # Per worker, one photo being analysed and one downloaded and waiting for it.
        self._slots = asyncio.Semaphore(2 * workers)
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._chat_waiters: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def chat_turn(self, chat_id):
        """Wait until the chat's earlier photos are done, so its replies keep the photos' order."""
        self._chat_waiters[chat_id] = self._chat_waiters.get(chat_id, 0) + 1
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            self._chat_waiters[chat_id] -= 1
            if self._chat_waiters[chat_id] == 0:
                del self._chat_waiters[chat_id]
                del self._chat_locks[chat_id]

    @contextlib.asynccontextmanager
    async def slot(self):
        """Wait for a slot for one photo's download and analysis; chats get slots in turn."""
        async with self._slots:
            yield

    async def read(self, data):
        """Return the faces and annotated JPEG for photo bytes; raises classifier.ImageError."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read, data)

    def _read(self, data):
        started = time.perf_counter()
        analysis = self.reader.read_bytes(data)
        jpeg = annotate(analysis.image, analysis.faces) if analysis.faces else None
        return Result(analysis.faces, jpeg, round((time.perf_counter() - started) * 1000))

    def close(self):
        """Wait for the photos being analysed, then stop the workers."""
        self._executor.shutdown(wait=True)
