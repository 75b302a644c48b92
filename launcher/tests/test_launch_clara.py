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


def last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def test_set_entries_naming_environment_keys_go_into_its_copy_and_the_rest_to_the_trainer(
    launch, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar")
    overrides = {"DATASET_JSON": "dataset.json", "MMAR_CKPT_DIR": "runs/first", "epochs": "2"}
    result = launch(clara_args(dataset_id, mmar, set=set_list(overrides)), name="clara-env")

    assert result.returncode == 0, result.output[-3000:]
    # MMAR_CKPT_DIR is a key of environment.json: the trainer found it there, not in --set.
    assert "--set epochs=2\n" in result.output
    assert sorted(m["name"] for m in result.models) == [
        "runs/first/final_model.pt",
        "runs/first/model.pt",
    ]
    assert result.last_metric("val_mean_dice") == pytest.approx(0.9, abs=1e-6)


def test_a_checkpoint_folder_outside_the_mmar_fails_before_training(
    launch, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar")
    outside = tmp_path / "checkpoints"
    overrides = {"DATASET_JSON": "dataset.json", "MMAR_CKPT_DIR": str(outside)}
    result = launch(clara_args(dataset_id, mmar, set=set_list(overrides)), name="clara-ckpt-out")

    assert result.returncode == 2
    assert last_line(result.output) == (
        "clara-launcher: error: set MMAR_CKPT_DIR: expected a folder inside the MMAR (a relative "
        f"path such as models/run1), got '{outside}'; the launcher reads scalars and models from "
        "the MMAR only"
    )
    assert "fake medl.apps.train" not in result.output and not outside.exists()


def test_a_missing_datalist_fails_the_run_naming_the_file(launch, dataset_id, tmp_path: Path):
    mmar = make_mmar(tmp_path / "mmar")
    args = clara_args(dataset_id, mmar, set=set_list({"DATASET_JSON": "splits/missing.json"}))
    result = launch(args, name="clara-no-datalist")

    assert result.returncode == 2
    assert last_line(result.output).startswith("clara-launcher: error: DATASET_JSON: datalist ")
    assert last_line(result.output).endswith("/splits/missing.json does not exist in the dataset")
    assert result.models == []


def test_an_arch_without_its_config_fails_listing_the_config_files(
    launch, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar", configs={"config/config_train_other.json": "DenseNet121"})
    result = launch(clara_args(dataset_id, mmar, training_arch="SegResNet"), name="clara-no-arch")

    assert result.returncode == 2
    assert "the MMAR has no config for SegResNet" in last_line(result.output)
    assert last_line(result.output).endswith(
        "its config files: config/config_train_other.json, config/environment.json"
    )


def test_a_failing_trainer_fails_the_run_with_its_last_line_and_registers_nothing(
    launch, dataset_id, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "mmar")
    overrides = {"DATASET_JSON": "dataset.json", "epochs": "3", "fail_at_epoch": "2"}
    result = launch(clara_args(dataset_id, mmar, set=set_list(overrides)), name="clara-crash")

    assert result.returncode == 4
    assert last_line(result.output) == (
        "clara-launcher: error: training failed: medl.apps.train exited with code 1 "
        "(Epoch[2] RuntimeError: CUDA out of memory (fake))"
    )
    # Epoch 1's scalars were reported before the crash; no model was registered.
    assert result.last_metric("val_mean_dice") == pytest.approx(0.6333, abs=1e-4)
    assert result.models == []
