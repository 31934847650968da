"""The installed layout: rlvr, rlvr.envs and rlvr.verifiers, and plug-ins by entry point."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def run_python(code: str, path: Path, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_wheel_installs_the_users_layout(tmp_path):
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT))
    (wheel,) = (tmp_path / "dist").glob("rlvr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rlvr/envs/arithmetic.py" in names and "rlvr/verifiers/format.py" in names
    assert not any(n.startswith(("envs/", "verifiers/", "tests/")) for n in names), "no top-level envs/verifiers/tests"
    # Every sub-package of the source tree ships (a package missing from pyproject's
    # list works in an editable install and breaks in a real one).
    for init in (ROOT / "rlvr").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, f"{init.parent.name} is missing from the wheel"
    target = tmp_path / "site"
    pip("install", "--no-deps", "--target", str(target), str(wheel))
    code = (
        "import rlvr, rlvr.envs, rlvr.verifiers, rlvr.agents, rlvr.train\n"
        "from rlvr.verifiers import ExactMatch; from rlvr.envs import ArithmeticEnv\n"
        "print(rlvr.__file__); print(rlvr.envs.__file__)\n"
        "env = rlvr.make('rlvr/Countdown-v0'); env.reset(seed=0); print(env.step('x')[1])\n"
    )
    out = run_python(code, target, cwd=tmp_path).splitlines()
    assert out[0].startswith(str(target)) and out[1] == str(target / "rlvr" / "envs" / "__init__.py")
    assert out[2] == "0.0"


def test_plugin_package_is_found_by_entry_points(tmp_path):
    target = tmp_path / "site"
    pip("install", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT / "tests" / "plugin_pkg"))
    code = (
        "import sys, rlvr\n"
        "entries = rlvr.env_entries()\n"
        "assert 'rlvr_toy_plugin' not in sys.modules, 'plug-ins load lazily'\n"
        "print(entries['toyplugin/Echo-v0'].source)\n"
        "print(rlvr.verifier_entries()['toy-echo'].source)\n"
        "env = rlvr.make('toyplugin/Echo-v0')\n"
        "obs, info = env.reset(options={'problem_id': 'beta'})\n"
        "print(obs, env.step('beta')[1])\n"
        "import gymnasium; print(type(gymnasium.make('toyplugin/Echo-v0').unwrapped).__name__)\n"
        "print(rlvr.verify(rlvr.make_verifier('toy-echo'), 'x', rlvr.Problem(id='q', prompt='', reference='x')).score)\n"
    )
    out = run_python(code, target, cwd=tmp_path).splitlines()
    assert out == ["plug-in rlvr-toy-plugin", "plug-in rlvr-toy-plugin", "Repeat: beta 1.0", "EchoEnv", "1.0"]
