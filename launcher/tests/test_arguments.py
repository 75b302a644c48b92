"""The launcher's pure parts: reading the operator's arguments, the arch -> config table and
the trainer command lines for one and several GPUs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import clara_launcher as launcher
from conftest import LAUNCHER, make_bundle, make_data, make_mmar, set_list

BASE = {
    "Args/runtime": "ClaraTrain",
    "Args/dataset_task": "0123456789abcdef0123456789abcdef",
    "Args/mmar": "ngc:clara_pt_spleen_ct_segmentation:4.1",
    "Args/training_arch": "UNet",
    "Args/config_file": "",
    "Args/environment_file": "config/environment.json",
    "Args/set": "['DATASET_JSON=dataset.json', 'epochs=5']",
    "Args/gpus": "1",
}


@pytest.mark.parametrize(
    "items",
    [
        {},
        {"epochs": "5"},
        {"note": "it's = here", "train#dataloader#batch_size": "2"},
        {"empty": ""},
    ],
    ids=["none", "one", "quote, equals and nested id", "empty value"],
)
def test_set_lists_written_by_the_operator_read_back(items):
    assert launcher.parse_set_list(set_list(items)) == list(items.items())


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs=5", "expected a list"),
        ("['epochs=5'", "expected a list"),
        ("[epochs=5]", "single-quoted item"),
        ("['epochs=5' 'x=1']", "expected ',' between items"),
        ("['epochs=5]", "missing its closing quote"),
        ("['5epochs=1']", "is not KEY=VALUE"),
        ("['epochs']", "is not KEY=VALUE"),
    ],
)
def test_malformed_set_lists_are_refused_naming_the_argument(text, message):
    with pytest.raises(launcher.LauncherError, match=f"argument set: .*{message}"):
        launcher.parse_set_list(text)


def test_arguments_as_the_operator_writes_them():
    args = launcher.parse_args(BASE)
    assert (args.runtime, args.mmar_kind, args.mmar_value) == (
        "ClaraTrain",
        "ngc",
        "clara_pt_spleen_ct_segmentation:4.1",
    )
    assert args.overrides == [("DATASET_JSON", "dataset.json"), ("epochs", "5")]
    assert args.gpus == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"Args/runtime": "Torch"}, "argument runtime: expected one of ClaraTrain, MonaiBundle"),
        ({"Args/dataset_task": "spleen"}, "argument dataset_task: expected a ClearML dataset id"),
        ({"Args/mmar": "s3:bucket/x"}, "argument mmar: expected <kind>:<value>"),
        ({"Args/config_file": "config/x.json"}, "give exactly one of them"),
        ({"Args/training_arch": ""}, "give exactly one of them"),
        ({"Args/gpus": "two"}, "argument gpus: expected a whole number"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(change, message):
    with pytest.raises(launcher.LauncherError, match=message):
        launcher.parse_args({**BASE, **change})


@pytest.mark.parametrize(
    "arch, files, expected",
    [
        (
            "UNet",
            ["config/config_train_Unet.json", "config/config_train_segresnet.json"],
            "config/config_train_Unet.json",
        ),
        (
            "SegResNet",
            ["config/config_train_Unet.json", "config/config_train_segresnet.json"],
            "config/config_train_segresnet.json",
        ),
        ("UNet", ["config/trn_Unet.json"], "config/trn_Unet.json"),
        ("SegResNet", ["config/trn_SegResNet.json"], "config/trn_SegResNet.json"),
        ("DynUNet", ["config/config_train_DynUNet.json"], "config/config_train_DynUNet.json"),
    ],
)
def test_the_arch_table_picks_the_config_file(arch, files, expected, tmp_path: Path):
    mmar = make_mmar(tmp_path, configs={f: "X" for f in files})
    assert launcher.pick_config(str(mmar), arch, "") == expected


def test_a_plain_config_train_is_taken_when_its_model_is_the_arch(tmp_path: Path):
    mmar = make_mmar(tmp_path, configs={"config/config_train.json": "UNet"})
    assert launcher.pick_config(str(mmar), "UNet", "") == "config/config_train.json"
    with pytest.raises(launcher.LauncherError, match="no config for SegResNet"):
        launcher.pick_config(str(mmar), "SegResNet", "")


@pytest.mark.parametrize("config_file", ["../x.json", "/etc/x.json", "config/missing.json"])
def test_a_config_file_outside_or_missing_is_refused(config_file, tmp_path: Path):
    mmar = make_mmar(tmp_path / "m")
    with pytest.raises(launcher.LauncherError, match="argument config_file"):
        launcher.pick_config(str(mmar), "", config_file)


def clara(tmp_path: Path, gpus: int, overrides):
    mmar = make_mmar(tmp_path / "mmar")
    data = make_data(tmp_path / "data")
    args = launcher.parse_args({**BASE, "Args/gpus": str(gpus), "Args/set": set_list(overrides)})
    return launcher.plan_clara(args, root=str(mmar), local_copy=str(data), python="py"), mmar, data


def test_one_gpu_runs_medl_train_and_writes_the_environment_copy(tmp_path: Path):
    plan, mmar, data = clara(
        tmp_path, 1, {"DATASET_JSON": "dataset.json", "MMAR_CKPT_DIR": "runs/a", "epochs": "5"}
    )
    assert plan.command == [
        "py",
        "-u",
        "-m",
        "medl.apps.train",
        "-m",
        str(mmar),
        "-c",
        "config/config_train_Unet.json",
        "-e",
        "config/environment.clara-operator.json",
        "--write_train_stats",
        "--set",
        "epochs=5",
    ]
    written = json.loads((mmar / "config" / "environment.clara-operator.json").read_text())
    assert written["DATA_ROOT"] == str(data)
    assert written["DATASET_JSON"] == str(data / "dataset.json")
    assert written["MMAR_CKPT_DIR"] == "runs/a"
    assert written["PROCESSING_TASK"] == "segmentation"
    # The original stays as the MMAR shipped it.
    assert (
        json.loads((mmar / "config" / "environment.json").read_text())["MMAR_CKPT_DIR"] == "models"
    )


def test_several_gpus_use_the_distributed_launcher_with_multi_gpu(tmp_path: Path):
    plan, _, _ = clara(tmp_path, 4, {"DATASET_JSON": "dataset.json"})
    assert plan.command[:4] == ["py", "-m", "torch.distributed.launch", "--nproc_per_node=4"]
    assert "--nnodes=1" in plan.command and plan.command[-2:] == ["--set", "multi_gpu=True"]


def test_bundle_commands_for_one_and_several_gpus(tmp_path: Path):
    bundle = make_bundle(tmp_path / "b")
    (bundle / "configs" / "multi_gpu_train.json").write_text("{}")
    data = make_data(tmp_path / "data")
    params = {
        **BASE,
        "Args/runtime": "MonaiBundle",
        "Args/training_arch": "",
        "Args/config_file": "configs/train.json",
        "Args/set": set_list(
            {"DATASET_JSON": "dataset.json", "MMAR_CKPT_DIR": "ck", "epochs": "3"}
        ),
    }
    one = launcher.plan_bundle(
        launcher.parse_args(params), root=str(bundle), local_copy=str(data), python="py"
    )
    assert one.command == [
        "py",
        "-u",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(bundle / "configs/train.json"),
        "--bundle_root",
        str(bundle),
        "--dataset_dir",
        str(data),
        "--data_list_file_path",
        str(data / "dataset.json"),
        "--ckpt_dir",
        str(bundle / "ck"),
        "--epochs",
        "3",
        "--meta_file",
        str(bundle / "configs/metadata.json"),
    ]
    two = launcher.plan_bundle(
        launcher.parse_args({**params, "Args/gpus": "2"}),
        root=str(bundle),
        local_copy=str(data),
        python="py",
    )
    assert two.command[:6] == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
    ]
    configs = json.loads(two.command[two.command.index("--config_file") + 1])
    assert configs == [
        str(bundle / "configs/train.json"),
        str(bundle / "configs/multi_gpu_train.json"),
    ]


@pytest.mark.parametrize(
    "datalist, message",
    [
        (None, "does not exist in the dataset"),
        ("not json", "is not valid JSON"),
        ('{"validation": []}', "has no 'training' entries"),
        (
            '{"training": [{"image": "imagesTr/nope.nii.gz", "label": "labelsTr/case_0.nii.gz"}]}',
            "'training' entry 'imagesTr/nope.nii.gz'",
        ),
    ],
)
def test_the_datalist_must_exist_parse_and_name_existing_files(datalist, message, tmp_path: Path):
    data = make_data(tmp_path / "data")
    if datalist is None:
        (data / "dataset.json").unlink()
    else:
        (data / "dataset.json").write_text(datalist)
    with pytest.raises(launcher.LauncherError, match=f"DATASET_JSON: .*{message}"):
        launcher.resolve_datalist(str(data), "dataset.json", "training")


@pytest.mark.parametrize(
    "ref, url",
    [
        (
            "clara_pt_spleen_ct_segmentation:4.1",
            "/v2/models/nvidia/med/clara_pt_spleen_ct_segmentation/versions/4.1/zip",
        ),
        ("myorg/mymodel:1.0", "/v2/models/myorg/mymodel/versions/1.0/zip"),
        ("myorg/team/mymodel:1.0", "/v2/models/myorg/team/mymodel/versions/1.0/zip"),
    ],
)
def test_ngc_references_become_download_urls(ref, url):
    assert launcher.ngc_download_url(ref)[0] == launcher.NGC_API_URL + url


def test_printed_urls_lose_their_query_and_credentials():
    shown = launcher.public_url("https://user:pw@host:8443/m.zip?X-Amz-Signature=secret#f")
    assert shown == "https://host:8443/m.zip"
    assert (
        launcher.public_url("https://host:port/m.zip?sig=secret") == "(a URL that does not parse)"
    )
    line = "failed: 'https://h/a.zip?X-Amz-Signature=secret' and s3://u:pw@b/k?sig=secret, ok"
    assert launcher.redact_urls(line) == "failed: 'https://h/a.zip' and s3://b/k, ok"


def test_a_bad_mmar_argument_is_quoted_without_a_url_query():
    with pytest.raises(launcher.LauncherError) as refused:
        launcher.parse_args({**BASE, "Args/mmar": "URL:https://h/m.zip?X-Amz-Signature=secret"})
    assert str(refused.value).endswith("got 'URL:https://h/m.zip'")


OUTSIDE = ["/abs/ckpt", "../outside", "models/../../outside", "~/ckpt", ""]


@pytest.mark.parametrize("value", OUTSIDE)
def test_a_clara_checkpoint_folder_outside_the_mmar_is_refused(value, tmp_path: Path):
    # Scalars and models are read from the MMAR only; a folder elsewhere would train unseen.
    with pytest.raises(launcher.LauncherError) as refused:
        clara(tmp_path, 1, {"DATASET_JSON": "dataset.json", "MMAR_CKPT_DIR": value})
    assert str(refused.value) == (
        "set MMAR_CKPT_DIR: expected a folder inside the MMAR (a relative path such as "
        f"models/run1), got {value!r}; the launcher reads scalars and models from the MMAR only"
    )
    assert refused.value.exit_code == launcher.EXIT_PERMANENT


def test_a_clara_checkpoint_folder_outside_the_mmar_in_the_environment_file_is_refused(
    tmp_path: Path,
):
    mmar = make_mmar(tmp_path / "mmar")
    environment = json.loads((mmar / "config" / "environment.json").read_text())
    environment["MMAR_CKPT_DIR"] = "/workspace/models"
    (mmar / "config" / "environment.json").write_text(json.dumps(environment))
    args = launcher.parse_args({**BASE, "Args/set": set_list({"DATASET_JSON": "dataset.json"})})
    data = make_data(tmp_path / "data")

    with pytest.raises(launcher.LauncherError, match="^MMAR_CKPT_DIR of config/environment.json"):
        launcher.plan_clara(args, root=str(mmar), local_copy=str(data), python="py")
    # A set entry inside the MMAR replaces the file's value, so the run can go ahead.
    args.overrides.append(("MMAR_CKPT_DIR", "runs/a"))
    launcher.plan_clara(args, root=str(mmar), local_copy=str(data), python="py")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("MMAR_CKPT_DIR", "/abs/ckpt", "set MMAR_CKPT_DIR: expected a folder inside the bundle"),
        ("ckpt_dir", "../ckpt", "set ckpt_dir: expected a folder inside the bundle"),
        ("output_dir", "/tmp/eval", "set output_dir: expected a folder inside the bundle"),
        ("output_dir", "$@bundle_root + '/../eval'", "set output_dir: .* got the expression"),
        ("bundle_root", "/elsewhere", "set bundle_root: the launcher sets bundle_root itself"),
        ("dataset_dir", "/data", "set dataset_dir: the launcher sets dataset_dir itself"),
    ],
)
def test_bundle_output_folders_outside_the_bundle_are_refused(key, value, message, tmp_path: Path):
    bundle = make_bundle(tmp_path / "b")
    data = make_data(tmp_path / "data")
    params = {
        **BASE,
        "Args/runtime": "MonaiBundle",
        "Args/training_arch": "",
        "Args/config_file": "configs/train.json",
        "Args/set": set_list({key: value}),
    }
    with pytest.raises(launcher.LauncherError, match=f"^{message}") as refused:
        launcher.plan_bundle(
            launcher.parse_args(params), root=str(bundle), local_copy=str(data), python="py"
        )
    assert refused.value.exit_code == launcher.EXIT_PERMANENT


def test_the_trainer_environment_has_no_secret_but_what_training_needs(monkeypatch):
    for name in launcher.SECRET_VARIABLES:
        monkeypatch.setenv(name, f"secret value of {name}")
    needed = {
        "PATH": "/usr/local/bin:/usr/bin",
        "PYTHONPATH": "/opt/medl",
        "HOME": "/root",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "CLEARML_TASK_ID": "0123456789abcdef0123456789abcdef",
    }
    for name, value in needed.items():
        monkeypatch.setenv(name, value)

    env = launcher.child_environment()
    assert {"NGC_API_KEY", "NGC_CLI_API_KEY", "CLEARML_API_SECRET_KEY"} <= set(
        launcher.SECRET_VARIABLES
    )
    assert not any("secret value of" in value for value in env.values())
    assert {name: env.get(name) for name in needed} == needed
    assert env["PYTHONUNBUFFERED"] == "1"


def run_alone(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The launcher outside any agent, with no ClearML configuration but what `env` gives."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "CLARA_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(LAUNCHER)],
        env={**base, "HOME": str(home), "CLEARML_TASK_ID": "0" * 32, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_limit_that_is_not_a_number_is_the_run_error_not_a_traceback(tmp_path: Path):
    result = run_alone(tmp_path, CLARA_LAUNCHER_MAX_MEMBERS="abc")
    assert result.returncode == launcher.EXIT_PERMANENT
    assert result.stdout.splitlines()[-1] == (
        "clara-launcher: error: CLARA_LAUNCHER_MAX_MEMBERS: expected a whole number of at least 1, "
        "got 'abc'"
    )
    assert "Traceback" not in result.stderr


def test_no_clearml_configuration_is_a_permanent_error_that_says_what_to_set(tmp_path: Path):
    result = run_alone(tmp_path)
    assert result.returncode == launcher.EXIT_PERMANENT, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("clara-launcher: connecting to ClearML at the api_server of")
    assert lines[-1] == (
        "clara-launcher: error: ClearML is not configured: set CLEARML_API_HOST, "
        "CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY (clearml-agent sets them for the task "
        "it runs)"
    )
