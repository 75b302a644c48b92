"""Fixtures of the launcher suite. The emulator, the ClearML environment and the bridge to the
operator's TypeScript client are the fidelity suite's (test/fidelity/conftest.py, loaded under
another module name so the two conftest files do not collide); on top of them: a fake MMAR, a
fake bundle, a dataset in ClearML, and `launch`, which creates a task the way the operator does
and runs the real launcher file on it with the SDK."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAUNCHER = REPO / "launcher" / "clara_launcher.py"
FAKES = HERE / "fakes"

_spec = importlib.util.spec_from_file_location(
    "fidelity_conftest", REPO / "test" / "fidelity" / "conftest.py"
)
assert _spec and _spec.loader
fidelity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fidelity)

# Re-exported fixtures (pytest collects fixtures by name from this module).
emulator = fidelity.emulator
no_unknown_calls = fidelity.no_unknown_calls
home = fidelity.home
clearml_env = fidelity.clearml_env
ts_client = fidelity.ts_client
python_script = fidelity.python_script

sys.path.insert(0, str(REPO / "launcher"))


def args_hyperparams(args: Dict[str, str]) -> Dict[str, Any]:
    """The `Args` section as the operator's launch.ts writes it (every value a string)."""
    return {
        "Args": {
            name: {"section": "Args", "name": name, "value": value, "type": "str"}
            for name, value in args.items()
        }
    }


def set_list(items: Dict[str, str]) -> str:
    """`set` as launch.ts writes it: a YAML flow list of single-quoted K=V, '' for a quote."""
    quoted = ["'" + f"{k}={v}".replace("'", "''") + "'" for k, v in items.items()]
    return "[" + ", ".join(quoted) + "]"


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))
    return path


def make_mmar(root: Path, *, configs: Optional[Dict[str, str]] = None) -> Path:
    """A Clara 4.x-shaped MMAR: config files naming their network, environment.json, a
    pretrained models/model.pt that training must not re-register unless it rewrites it."""
    configs = configs if configs is not None else {"config/config_train_Unet.json": "UNet"}
    for rel, network in configs.items():
        write_json(root / rel, {"epochs": 2, "model": {"name": network, "args": {}}})
    write_json(
        root / "config" / "environment.json",
        {
            "DATA_ROOT": "/workspace/data",
            "DATASET_JSON": "/workspace/data/dataset_0.json",
            "PROCESSING_TASK": "segmentation",
            "MMAR_EVAL_OUTPUT_PATH": "eval",
            "MMAR_CKPT_DIR": "models",
        },
    )
    (root / "commands").mkdir(parents=True, exist_ok=True)
    (root / "commands" / "train.sh").write_text("#!/bin/sh\n")
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "pretrained.pt").write_bytes(b"shipped with the MMAR")
    return root


def make_bundle(root: Path) -> Path:
    write_json(root / "configs" / "train.json", {"epochs": 2, "dataset_dir": "/workspace/data"})
    write_json(root / "configs" / "metadata.json", {"version": "0.1.0", "monai_version": "1.4.0"})
    (root / "models").mkdir(parents=True, exist_ok=True)
    return root


def make_data(root: Path, cases: int = 3) -> Path:
    """A Decathlon-shaped dataset folder with a datalist `dataset.json`."""
    for i in range(cases):
        for folder in ("imagesTr", "labelsTr"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"case_{i}.nii.gz").write_bytes(bytes([i]) * 64)
    entries = [
        {"image": f"imagesTr/case_{i}.nii.gz", "label": f"labelsTr/case_{i}.nii.gz"}
        for i in range(cases)
    ]
    write_json(root / "dataset.json", {"training": entries[:-1], "validation": entries[-1:]})
    return root


@pytest.fixture(scope="session")
def dataset_id(tmp_path_factory: pytest.TempPathFactory, emulator) -> str:
    """One ClearML dataset (made by the real SDK) with the Decathlon layout, for every run."""
    data = make_data(tmp_path_factory.mktemp("data"))
    env = fidelity_env(emulator, tmp_path_factory.mktemp("home-ds"))
    out = fidelity.run(
        [sys.executable, str(fidelity.SCRIPTS / "dataset_create.py"), str(data)], env
    )
    return out.split("DATASET_ID=")[1].strip()


def fidelity_env(emulator, home_dir: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(
        HOME=str(home_dir),
        CLEARML_API_HOST=emulator.api_url,
        CLEARML_WEB_HOST=emulator.api_url,
        CLEARML_FILES_HOST=emulator.files_url,
        CLEARML_API_ACCESS_KEY=emulator.access_key,
        CLEARML_API_SECRET_KEY=emulator.secret_key,
        PYTHONUNBUFFERED="1",
    )
    return env


class LaunchResult:
    def __init__(self, proc: subprocess.CompletedProcess, back: Dict[str, Any]) -> None:
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.task = back["task"]
        self.log: List[str] = [line for line in back["log"] if line is not None]
        self.scalars = back["scalars"]
        self.models = back["models"]

    def last_launcher_line(self) -> str:
        lines = [ln for chunk in self.log for ln in chunk.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def last_metric(self, name: str) -> float:
        for variants in (self.task.get("last_metrics") or {}).values():
            for summary in variants.values():
                if summary.get("metric") == name and summary.get("variant") == name:
                    return summary["value"]
        raise AssertionError(f"no scalar {name} in last_metrics: {self.task.get('last_metrics')}")


@pytest.fixture
def launch(ts_client, clearml_env, tmp_path: Path):
    """Creates a task as the operator does (Args hyperparameters, no repository) and runs the
    launcher on it under the SDK, as clearml-agent would run it; returns what ClearML holds."""

    def run(
        args: Dict[str, str], *, extra_env: Optional[Dict[str, str]] = None, name: str = "launch"
    ) -> LaunchResult:
        created = ts_client(
            "create-task", "Launcher", name, json.dumps({"hyperparams": args_hyperparams(args)})
        )
        env = {
            **clearml_env,
            "CLEARML_TASK_ID": created["id"],
            "PYTHONPATH": str(FAKES),
            **(extra_env or {}),
        }
        proc = subprocess.run(
            [sys.executable, str(LAUNCHER)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return LaunchResult(proc, ts_client("read-back", created["id"]))

    return run
