"""`clearml-agent daemon --queue <q> --foreground` (the operator's External mode, reference
§8.5 option A) serves a queue: the operator's client sees the queue as watched once the daemon
registered, and the task it enqueues runs to completed with its output captured."""
import json
import subprocess
import sys
import time
from pathlib import Path

AGENT = Path(sys.executable).parent / "clearml-agent"
QUEUE = "fidelity-daemon"


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.5)


def test_daemon_serves_the_queue_and_completes_the_enqueued_task(
    emulator, ts_client, clearml_env, tmp_path: Path
):
    script = {
        "binary": "python3",
        "entry_point": "daemon_hello.py",
        "working_dir": ".",
        "diff": 'print("hello from the daemon task")\n',
        "requirements": {"pip": ""},
    }
    task_id = ts_client("create-task", "Fidelity", "agent-daemon", json.dumps({"script": script}))[
        "id"
    ]
    daemon = subprocess.Popen(
        [str(AGENT), "daemon", "--queue", QUEUE, "--create-queue", "--foreground"],
        env=clearml_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: any(c["endpoint"] == "workers.register" for c in emulator.calls()["calls"]),
            60,
            "the daemon to register",
        )
        assert ts_client("enqueue", task_id, QUEUE)["queueWatched"] is True
        wait_until(
            lambda: ts_client("read-back", task_id)["task"]["status"] in ("completed", "failed"),
            300,
            "the task to finish",
        )
    finally:
        daemon.terminate()
        try:
            output = daemon.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            daemon.kill()
            output = daemon.communicate()[0]

    back = ts_client("read-back", task_id)
    assert back["task"]["status"] == "completed", output[-4000:]
    assert back["task"]["status_reason"] == "worker execution done"
    assert any("hello from the daemon task" in line for line in back["log"]), output[-4000:]
