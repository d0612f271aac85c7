"""scripts/setup.sh picks the TensorFlow build: GPU with --gpu or a working nvidia-smi, else CPU."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def plan(tmp_path, *args, nvidia_smi_exit=None):
    """What setup.sh would install (SETUP_DRY_RUN=1), with a fake nvidia-smi first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "nvidia-smi"
    fake.unlink(missing_ok=True)
    if nvidia_smi_exit is not None:
        fake.write_text(f"#!/bin/sh\nexit {nvidia_smi_exit}\n")
        fake.chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                          env={**os.environ, "PATH": path, "SETUP_DRY_RUN": "1"}, timeout=60)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("args, nvidia_smi_exit, build", [
    ((), None, "cpu"),                 # no nvidia-smi
    ((), 9, "cpu"),                    # nvidia-smi present but no working driver
    ((), 0, "gpu"),                    # a working nvidia-smi
    (("--gpu",), None, "gpu"),
    (("--cpu",), 0, "cpu"),            # forced CPU on a GPU machine
    (("--dev", "--gpu"), None, "gpu"),
])
def test_setup_picks_the_tensorflow_build(tmp_path, args, nvidia_smi_exit, build):
    code, out = plan(tmp_path, *args, nvidia_smi_exit=nvidia_smi_exit)
    assert code == 0, out
    assert f"-r requirements-{build}.txt" in out and f"TensorFlow build: {build}" in out
    assert ("-r requirements-dev.txt" in out) == ("--dev" in args)


def test_unknown_option_is_refused(tmp_path):
    code, out = plan(tmp_path, "--gpus")
    assert code == 2 and "unknown option '--gpus'" in out


def test_both_builds_pin_the_same_tensorflow_and_the_package_forces_neither():
    cpu = re.search(r"^tensorflow-cpu==(\S+)$", (ROOT / "requirements-cpu.txt").read_text(), re.M)
    gpu = re.search(r"^tensorflow\[and-cuda\]==(\S+)$", (ROOT / "requirements-gpu.txt").read_text(), re.M)
    assert cpu and gpu and cpu.group(1) == gpu.group(1)
    # pyproject.toml's dependencies are requirements.txt: no TensorFlow build is forced there.
    assert not re.search(r"^tensorflow(-cpu)?(\[[^]]*\])?\s*[=<>~]", (ROOT / "requirements.txt").read_text(), re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'cpu = ["tensorflow-cpu=={cpu.group(1)}"]' in pyproject
    assert f'gpu = ["tensorflow[and-cuda]=={gpu.group(1)}"]' in pyproject
