"""Fixtures of the fidelity suite: one emulator process (Node 24 from the repo's node_modules)
for the session, the environment the real SDK and agent read, and a bridge to the operator's
TypeScript client. Any request the emulator did not know fails the test that caused it."""
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "node_modules" / ".bin" / "node"
SCRIPTS = Path(__file__).resolve().parent / "scripts"


class Emulator:
    """A running `test/emulator/main.ts` process."""

    def __init__(self, proc: subprocess.Popen, info: Dict[str, str]) -> None:
        self.proc = proc
        self.api_url = info["apiUrl"]
        self.files_url = info["filesUrl"]
        self.access_key = info["accessKey"]
        self.secret_key = info["secretKey"]

    def calls(self) -> Dict[str, Any]:
        with urllib.request.urlopen(f"{self.api_url}/_emulator/calls", timeout=10) as response:
            return json.load(response)

    def unknown_calls(self) -> List[Dict[str, Any]]:
        return self.calls()["unknownCalls"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    if not NODE.exists():
        pytest.fail(f"{NODE} is missing: run `npm ci` in {REPO} first")
    proc = subprocess.Popen(
        [str(NODE), "test/emulator/main.ts", "--port", "0", "--files-port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        pytest.fail(f"emulator did not start: {proc.stderr.read() if proc.stderr else ''}")
    emu = Emulator(proc, json.loads(line))
    yield emu
    # Keep the call log for diagnosis (which endpoints, versions and codes the clients used).
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / "fidelity-calls.json").write_text(json.dumps(emu.calls(), indent=1))
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def no_unknown_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test if the SDK or the agent made a request the emulator does not know, or one
    the emulator could not handle (a 5xx from the emulator is a bug in it)."""
    if "emulator" not in request.fixturenames:
        yield
        return
    emu: Emulator = request.getfixturevalue("emulator")
    before = emu.calls()
    yield
    after = emu.calls()
    unknown = after["unknownCalls"][len(before["unknownCalls"]):]
    if unknown:
        names = ", ".join(f"{c['service']}:{c['endpoint']}@{c.get('version')}" for c in unknown)
        pytest.fail(f"requests unknown to the emulator: {names}")
    broken = [c for c in after["calls"][len(before["calls"]):] if c["status"] >= 500]
    if broken:
        pytest.fail(f"emulator failed on: {broken}")


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty HOME so no ~/clearml.conf or cache of the machine leaks in."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def clearml_env(emulator: Emulator, home: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(
        HOME=str(home),
        CLEARML_API_HOST=emulator.api_url,
        CLEARML_WEB_HOST=emulator.api_url,
        CLEARML_FILES_HOST=emulator.files_url,
        CLEARML_API_ACCESS_KEY=emulator.access_key,
        CLEARML_API_SECRET_KEY=emulator.secret_key,
        CLEARML_LOG_ENVIRONMENT="",
        PYTHONUNBUFFERED="1",
    )
    return env


def run(cmd: List[str], env: Dict[str, str], timeout: int = 180, cwd: Path = REPO) -> str:
    """Runs a command, failing the test with its output if it exits non-zero."""
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        command = " ".join(cmd[:3])
        tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"{command} exited {result.returncode}\n{tail}")
    return result.stdout


@pytest.fixture
def ts_client(clearml_env: Dict[str, str]):
    """Calls the operator's TypeScript client through test/fidelity/ts-client.ts."""

    def call(*args: str) -> Any:
        out = run([str(NODE), "test/fidelity/ts-client.ts", *args], clearml_env, timeout=60)
        return json.loads(out)

    return call


@pytest.fixture
def python_script(clearml_env: Dict[str, str], tmp_path: Path):
    """Runs one of scripts/*.py with the suite's interpreter (the one with clearml installed)."""

    def call(name: str, *args: str, extra_env: Optional[Dict[str, str]] = None) -> str:
        env = {**clearml_env, **(extra_env or {})}
        return run([sys.executable, str(SCRIPTS / name), *args], env, cwd=tmp_path)

    return call
