"""Build the Docker image with podman and get a reply from the container (slow: minutes).

Needs podman and a local `python:3.11-slim` base image. The shared `container-base.sh`
script prepares both on machines without a Docker engine or registry. The test skips, with
the reason, when either is missing.
"""

import asyncio
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from tests.bot_process import TOKEN
from tests.conftest import ROOT
from tests.fake_bot_api import PRIVATE_CHAT, FakeBotApi
from tests.test_bot import assert_annotated_reply, photo_sizes

IMAGE = "emotion-bot:test"
BASE_IMAGE = "docker.io/library/python:3.11-slim"

pytestmark = pytest.mark.slow

# Where container-base.sh keeps podman's storage and settings.
CONTAINER_DIR = pathlib.Path(os.environ.get("CONTAINER_DIR", "/tmp/containers"))
for variable, file in (("CONTAINERS_STORAGE_CONF", "storage.conf"), ("CONTAINERS_CONF", "containers.conf")):
    if (CONTAINER_DIR / file).exists():
        os.environ.setdefault(variable, str(CONTAINER_DIR / file))


def podman(*args, timeout_s=60, check=True):
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout_s, check=check)


@pytest.fixture(scope="module")
def image():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (source ../shared/tools/container-base.sh to set it up)")
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"base image {BASE_IMAGE} is missing (source ../shared/tools/container-base.sh to build it)")
    started = time.monotonic()
    build = podman("build", "--pull=never", "-t", IMAGE, str(ROOT), timeout_s=1800, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    size = podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip()
    print(f"image {IMAGE}: {int(size) / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s")
    return IMAGE


async def test_container_replies_to_photo(image, portrait_bytes):
    api = await FakeBotApi(TOKEN).start()
    name = f"emotion-bot-test-{os.getpid()}"
    started = time.monotonic()
    podman("run", "-d", "--rm", "--name", name, "--network=host", "-e", f"TELEGRAM_BOT_TOKEN={TOKEN}",
           "-e", f"TELEGRAM_API_BASE_URL={api.base_url}", image)
    try:
        await api.wait_for(1, "getUpdates", timeout_s=180)
        print(f"container polling after {time.monotonic() - started:.1f} s")
        api.add_file("portrait", portrait_bytes)
        message_id = api.push_message(PRIVATE_CHAT, photo=photo_sizes("portrait", portrait_bytes))

        [reply] = await api.wait_for(1, "sendPhoto", timeout_s=120)

        assert_annotated_reply(reply, PRIVATE_CHAT, message_id, faces=1)
        user = podman("exec", name, "id", "-u").stdout.strip()
        assert user != "0"
        health = podman("exec", name, "python", "-m", "bot.healthcheck", check=False)
        assert health.returncode == 0, health.stderr
    finally:
        stop = await asyncio.to_thread(podman, "stop", "-t", "60", name, timeout_s=120, check=False)
        await api.stop()
    assert stop.returncode == 0, stop.stderr
