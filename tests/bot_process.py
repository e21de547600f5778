"""Start the real bot (`python -m bot`) as a child process against a fake Bot API server."""

import asyncio
import os
import signal
import sys

from tests.conftest import ROOT

TOKEN = "123456:TEST-token-never-logged"


async def start_bot(api, cwd, **environment):
    env = {key: value for key, value in os.environ.items() if not key.startswith("TELEGRAM_")}
    env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=api.base_url, LOG_LEVEL="INFO",
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **environment)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    process.output = bytearray()
    process.reader_task = asyncio.ensure_future(_collect(process))
    return process


async def _collect(process):
    async for line in process.stdout:
        process.output.extend(line)


async def stop_bot(process, timeout_s=60):
    """Send SIGTERM, wait for exit; return (exit code, everything the bot printed)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await wait_for_exit(process, timeout_s)


async def wait_for_exit(process, timeout_s=120):
    """Wait for the bot to exit (killing it after `timeout_s`); return (exit code, output)."""
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
    await process.reader_task
    return process.returncode, process.output.decode(errors="replace")
