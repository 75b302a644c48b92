"""The real clearml-agent (`execute --id`, virtualenv mode, the machine's Python) runs the
launcher as the operator stores it in the task (script.diff, entry point clara_launcher.py, no
repository): the task ends completed with the trainer's console in its log, or failed with the
launcher's reason as its last line.

The agent's fresh venv gets `clearml`, `tensorboardX` and the fake trainers through PYTHONPATH
(the suite's venv site-packages, then fakes/): in production the training image provides them."""

import json
import site
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conftest import FAKES, LAUNCHER, args_hyperparams, make_mmar, set_list

AGENT = Path(sys.executable).parent / "clearml-agent"


def operator_task(ts_client, name: str, args) -> str:
    script = {
        "binary": "python3",
        "entry_point": LAUNCHER.name,
        "working_dir": ".",
        "diff": LAUNCHER.read_text(),
    }
    extra = {"script": script, "hyperparams": args_hyperparams(args)}
    task_id = ts_client("create-task", "Launcher", name, json.dumps(extra))["id"]
    assert ts_client("enqueue", task_id, "launcher-agent")["queued"] == 1
    return task_id


def run_agent(task_id: str, clearml_env, tmp_path: Path) -> str:
    paths = [*site.getsitepackages(), str(FAKES)]
    env = {**clearml_env, "PYTHONPATH": ":".join(paths)}
    agent = subprocess.run(
        [str(AGENT), "execute", "--id", task_id, "--full-monitoring", "--require-queue"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return (agent.stdout + agent.stderr)[-4000:]


def clara_args(dataset_id: str, mmar: Path, overrides):
    return {
        "runtime": "ClaraTrain",
        "dataset_task": dataset_id,
        "mmar": f"path:{mmar}",
        "training_arch": "UNet",
        "config_file": "",
        "environment_file": "config/environment.json",
        "set": set_list(overrides),
        "gpus": "1",
    }


def test_agent_runs_the_launcher_to_completed_with_console_scalars_and_models(
    ts_client, clearml_env, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar")
    args = clara_args(dataset_id, mmar, {"DATASET_JSON": "dataset.json", "epochs": "2"})
    task_id = operator_task(ts_client, "agent-launch-ok", args)
    output = run_agent(task_id, clearml_env, tmp_path)

    back = ts_client("read-back", task_id)
    assert back["task"]["status"] == "completed", output
    log = "\n".join(back["log"])
    assert "fake medl.apps.train: 2 training cases" in log, output
    assert "Epoch[2] Metrics -- val_mean_dice: 0.9000 val_acc: 0.9000" in log
    assert "clara-launcher: registered output model models/model.pt" in log
    names = {s["metric"] for v in back["task"]["last_metrics"].values() for s in v.values()}
    assert {"val_mean_dice", "val_acc", "train_loss", "train_acc"} <= names
    assert sorted(m["name"] for m in back["models"]) == ["models/final_model.pt", "models/model.pt"]


def test_agent_marks_the_task_failed_with_the_launcher_reason_last(
    ts_client, clearml_env, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar")
    args = clara_args(dataset_id, mmar, {"DATASET_JSON": "lists/absent.json"})
    task_id = operator_task(ts_client, "agent-launch-fail", args)
    output = run_agent(task_id, clearml_env, tmp_path)

    back = ts_client("read-back", task_id)
    assert back["task"]["status"] == "failed", output
    assert back["task"]["status_reason"] == "worker execution exit code 2"
    launcher_lines = [ln for ln in "\n".join(back["log"]).splitlines() if "clara-launcher:" in ln]
    assert launcher_lines[-1].startswith("clara-launcher: error: DATASET_JSON: datalist ")
    assert launcher_lines[-1].endswith("/lists/absent.json does not exist in the dataset")


def test_stopping_the_task_ends_the_launcher_and_its_trainer(
    ts_client, clearml_env, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar-abort")
    overrides = {"DATASET_JSON": "dataset.json", "epochs": "100", "epoch_seconds": "1"}
    task_id = operator_task(ts_client, "agent-launch-stop", clara_args(dataset_id, mmar, overrides))
    env = {**clearml_env, "PYTHONPATH": ":".join([*site.getsitepackages(), str(FAKES)])}
    agent = subprocess.Popen(
        [str(AGENT), "execute", "--id", task_id, "--full-monitoring", "--require-queue"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not any("Epoch: 2/100" in ln for ln in ts_client("read-back", task_id)["log"]):
            assert agent.poll() is None, "the agent exited before training started"
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(1)
        assert trainers_of(mmar), "the fake trainer is not running"

        assert ts_client("stop", task_id)["updated"] == 1
        output = agent.communicate(timeout=120)[0]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()

    assert ts_client("read-back", task_id)["task"]["status"] == "stopped", output[-4000:]
    deadline = time.monotonic() + 10
    while trainers_of(mmar) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert trainers_of(mmar) == [], "the trainer outlived the stopped task"


def trainers_of(mmar: Path):
    """Processes running medl.apps.train on a copy of this MMAR (the launcher copies it to a
    work folder, so match on the config file the run uses and this test's epoch count)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if (
            "medl.apps.train" in cmdline
            and "epochs=100" in cmdline
            and "epoch_seconds=1" in cmdline
        ):
            found.append(proc.pid)
    return found
