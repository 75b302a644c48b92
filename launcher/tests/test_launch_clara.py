"""The launcher run on a task made as the operator makes it, under the real clearml SDK against
the emulator, with the fake Clara trainer: scalars, models, console and failures as the operator
reads them back."""
from pathlib import Path

import pytest

from conftest import make_mmar, set_list

SCALARS = ("val_mean_dice", "val_acc", "train_loss", "train_acc")


def clara_args(dataset_id: str, mmar: Path, **overrides: str):
    args = {
        "runtime": "ClaraTrain",
        "dataset_task": dataset_id,
        "mmar": f"path:{mmar}",
        "training_arch": "UNet",
        "config_file": "",
        "environment_file": "config/environment.json",
        "set": set_list({"DATASET_JSON": "dataset.json", "epochs": "3"}),
        "gpus": "1",
    }
    args.update(overrides)
    return args


def test_clara_run_reports_the_four_scalars_and_registers_the_models(
    launch, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar")
    result = launch(clara_args(dataset_id, mmar), name="clara-ok")

    assert result.returncode == 0, result.output[-3000:]
    # The fake trainer's curves at its last epoch (3 of 3; TensorBoard stores float32), read
    # back from last_metrics as the operator reads them.
    assert result.last_metric("val_mean_dice") == pytest.approx(0.9, abs=1e-6)
    assert result.last_metric("val_acc") == pytest.approx(0.9, abs=1e-6)
    assert result.last_metric("train_acc") == pytest.approx(0.85, abs=1e-6)
    assert result.last_metric("train_loss") == pytest.approx(0.1, abs=1e-6)
    assert result.task["last_iteration"] >= 9
    names = sorted(m["name"] for m in result.models)
    assert names == ["models/final_model.pt", "models/model.pt"]
    assert all(m["framework"] == "PyTorch" and m["uri"] for m in result.models)
    # The trainer's console went through the launcher (the agent sends it to the task log).
    log = result.output
    assert "fake medl.apps.train: config config/config_train_Unet.json, model UNet" in log
    assert "Training finished" in log
