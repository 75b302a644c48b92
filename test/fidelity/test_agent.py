"""The real clearml-agent (`execute --id`, virtualenv mode, the machine's Python) runs a small
script task created and enqueued by the operator's client; the task must end with the status
and console output the operator expects to read."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

AGENT = Path(sys.executable).parent / "clearml-agent"

SCRIPT = """\
import sys
import time
print("hello from the agent task")
print("python", sys.version_info[0])
sys.exit({exit_code})
"""

CASES = [
    # As the operator's Execute mode runs it (DESIGN.md "The run" step 3).
    {
        "exit_code": 0,
        "flags": ["--full-monitoring", "--require-queue"],
        "status": "completed",
        "reason": "worker execution done",
    },
    {
        "exit_code": 3,
        "flags": [],
        "status": "failed",
        "reason": "worker execution exit code 3",
    },
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"exit-{c['exit_code']}")
def test_agent_executes_a_script_task_to_its_final_status(
    case, ts_client, clearml_env, tmp_path: Path
):
    script = {
        "binary": "python3",
        "entry_point": "hello.py",
        "working_dir": ".",
        "diff": SCRIPT.format(exit_code=case["exit_code"]),
        "requirements": {"pip": ""},
    }
    name = f"agent-exit-{case['exit_code']}"
    task_id = ts_client("create-task", "Fidelity", name, json.dumps({"script": script}))["id"]
    assert ts_client("enqueue", task_id, "fidelity-agent")["queued"] == 1

    agent = subprocess.run(
        [str(AGENT), "execute", "--id", task_id, *case["flags"]],
        env=clearml_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = (agent.stdout + agent.stderr)[-4000:]

    back = ts_client("read-back", task_id)
    assert back["task"]["status"] == case["status"], output
    assert back["task"]["status_reason"] == case["reason"], output
    log = "\n".join(back["log"])
    assert "hello from the agent task" in log, output
    assert "python 3" in log, output


LONG_RUNNING = """\
import time
print("long task started", flush=True)
for _ in range(600):
    time.sleep(0.5)
print("long task was not stopped")
"""


def test_agent_stops_the_process_when_the_operator_stops_the_task(
    ts_client, clearml_env, tmp_path: Path
):
    script = {
        "binary": "python3",
        "entry_point": "long.py",
        "working_dir": ".",
        "diff": LONG_RUNNING,
        "requirements": {"pip": ""},
    }
    extra = json.dumps({"script": script})
    task_id = ts_client("create-task", "Fidelity", "agent-stop", extra)["id"]
    ts_client("enqueue", task_id, "fidelity-agent")
    agent = subprocess.Popen(
        [str(AGENT), "execute", "--id", task_id, "--full-monitoring", "--require-queue"],
        env=clearml_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not any("long task started" in ln for ln in ts_client("read-back", task_id)["log"]):
            assert agent.poll() is None, "agent exited before the task started"
            assert time.monotonic() < deadline, "task did not start"
            time.sleep(1)

        assert ts_client("stop", task_id)["updated"] == 1
        output = agent.communicate(timeout=120)[0]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()

    # The agent was reporting, so the server only asked ("stopping") and the agent itself ended
    # the process and set the final status (reference §3.7).
    back = ts_client("read-back", task_id)
    assert back["task"]["status"] == "stopped", output[-4000:]
    assert back["task"]["status_reason"] == "task was stopped by tasks.stop", output[-4000:]
    assert any("Process aborted by user" in line for line in back["log"])
    assert not any("was not stopped" in line for line in back["log"])
