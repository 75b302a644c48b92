"""MONAI bundle runs: the bundle from a path or from the (fake) Model Zoo, `monai.bundle run`
with the dataset and set overrides, and the bundle's metric names mapped to the operator's."""

from pathlib import Path

import pytest

from conftest import make_bundle, set_list


def bundle_args(dataset_id: str, mmar: str, **overrides: str):
    args = {
        "runtime": "MonaiBundle",
        "dataset_task": dataset_id,
        "mmar": mmar,
        "training_arch": "",
        "config_file": "configs/train.json",
        "environment_file": "",
        "set": set_list({"epochs": "2", "train#dataloader#batch_size": "2"}),
        "gpus": "1",
    }
    args.update(overrides)
    return args


def test_bundle_run_maps_val_accuracy_and_train_accuracy_to_the_operator_names(
    launch, dataset_id, tmp_path: Path
):
    bundle = make_bundle(tmp_path / "spleen_bundle")
    result = launch(bundle_args(dataset_id, f"path:{bundle}"), name="bundle-ok")

    assert result.returncode == 0, result.output[-3000:]
    assert result.last_metric("val_acc") == pytest.approx(0.9, abs=1e-6)
    assert result.last_metric("train_acc") == pytest.approx(0.85, abs=1e-6)
    assert result.last_metric("val_mean_dice") == pytest.approx(0.9, abs=1e-6)
    assert result.last_metric("train_loss") == pytest.approx(1 / 7, abs=1e-4)
    names = {s["metric"] for v in result.task["last_metrics"].values() for s in v.values()}
    assert "val_accuracy" not in names and "train_accuracy" not in names
    assert sorted(m["name"] for m in result.models) == ["models/final_model.pt", "models/model.pt"]
    # set entries became --KEY VALUE overrides, '#' ids unchanged.
    assert "overrides ['bundle_root', 'dataset_dir', 'epochs', 'train#dataloader#batch_size']" in (
        result.output
    )


def test_bundle_from_the_model_zoo_is_downloaded_by_monai_bundle(
    launch, dataset_id, tmp_path: Path
):
    zoo = tmp_path / "zoo"
    make_bundle(zoo / "spleen_ct_segmentation")
    result = launch(
        bundle_args(dataset_id, "bundle:spleen_ct_segmentation:0.5.9"),
        extra_env={"FAKE_MONAI_ZOO": str(zoo)},
        name="bundle-zoo",
    )

    assert result.returncode == 0, result.output[-3000:]
    assert "fake monai.bundle download: spleen_ct_segmentation version 0.5.9" in result.output
    assert len(result.models) == 2


@pytest.mark.parametrize(
    "spoil, extra_env, message",
    [
        (
            lambda b, outside: (b / "models" / "pretrained.pt").symlink_to(outside),
            {},
            "bundle spleen_ct_segmentation:0.5.9: 'models/pretrained.pt' is a link that leaves ",
        ),
        (
            lambda b, outside: (b / "models" / "pretrained.pt").write_bytes(b"w" * 4000),
            {"CLARA_LAUNCHER_MAX_EXTRACTED_BYTES": "4000"},
            "bundle spleen_ct_segmentation:0.5.9: {total} bytes is over the limit of 4000",
        ),
    ],
    ids=["link out", "over the size limit"],
)
def test_a_zoo_bundle_is_checked_after_monai_unpacks_it(
    spoil, extra_env, message, launch, dataset_id, tmp_path: Path
):
    zoo = tmp_path / "zoo"
    bundle = make_bundle(zoo / "spleen_ct_segmentation")
    outside = tmp_path / "host-secret.pt"
    outside.write_bytes(b"not part of the bundle")
    spoil(bundle, outside)
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    result = launch(
        bundle_args(dataset_id, "bundle:spleen_ct_segmentation:0.5.9"),
        extra_env={"FAKE_MONAI_ZOO": str(zoo), **extra_env},
        name="bundle-zoo-refused",
    )

    assert result.returncode == 2, result.output[-3000:]
    last = [line for line in result.output.splitlines() if line.strip()][-1]
    assert last.startswith("clara-launcher: error: " + message.format(total=total))
    assert "fake monai.bundle run" not in result.output and result.models == []


def test_bundle_datalist_is_checked_and_passed_as_data_list_file_path(
    launch, dataset_id, tmp_path: Path
):
    bundle = make_bundle(tmp_path / "b")
    args = bundle_args(dataset_id, f"path:{bundle}", set=set_list({"DATASET_JSON": "nope.json"}))
    result = launch(args, name="bundle-no-datalist")

    assert result.returncode == 2
    assert result.output.rstrip().endswith("/nope.json does not exist in the dataset")
