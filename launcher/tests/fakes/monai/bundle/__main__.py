"""Fake `python -m monai.bundle run --config_file F [--meta_file M] [--logging_file L] [--id V ...]`
and `python -m monai.bundle download --name N [--version V] --bundle_dir D` (`clara-mmar.md` §6).
Downloads copy `$FAKE_MONAI_ZOO/<name>`, links as links (a local stand-in for the Model Zoo)."""

import ast
import glob
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from trainer_common import train  # noqa: E402


def options(argv):
    out = {}
    for i in range(0, len(argv), 2):
        if not argv[i].startswith("--") or i + 1 >= len(argv):
            sys.exit(f"fake monai.bundle: bad argument {argv[i]!r}")
        out[argv[i][2:]] = argv[i + 1]
    return out


def run(opts) -> None:
    files = opts.pop("config_file")
    files = ast.literal_eval(files) if files.startswith("[") else [files]
    config = {}
    for path in files:
        with open(path) as f:
            config.update(json.load(f))
    for key in ("meta_file", "logging_file"):
        if key in opts and not os.path.isfile(opts.pop(key)):
            sys.exit(f"fake monai.bundle: {key} is missing")
    config.update(opts)
    root = config["bundle_root"]
    images = sorted(glob.glob(os.path.join(config["dataset_dir"], "imagesTr", "*")))
    if not images:
        sys.exit(f"fake monai.bundle: no images under {config['dataset_dir']}/imagesTr")
    if "data_list_file_path" in config:
        with open(config["data_list_file_path"]) as f:
            json.load(f)
    print(f"fake monai.bundle run: {len(images)} images, overrides {sorted(opts)}", flush=True)
    names = {
        "train_loss": "train_loss",
        "train_acc": "train_accuracy",
        "val_mean_dice": "val_mean_dice",
        "val_acc": "val_accuracy",
    }
    train(
        epochs=int(config.get("epochs", 2)),
        ckpt_dir=config.get("ckpt_dir", os.path.join(root, "models")),
        tb_dir=os.path.join(root, "eval"),
        names=names,
        fail_at=int(config.get("fail_at_epoch", 0)),
    )


def download(opts) -> None:
    source = os.path.join(os.environ["FAKE_MONAI_ZOO"], opts["name"])
    if not os.path.isdir(source):
        sys.exit(f"fake monai.bundle download: no bundle {opts['name']}")
    # Links are kept, as MONAI's tar branch (tarfile.extractall) makes them.
    shutil.copytree(source, os.path.join(opts["bundle_dir"], opts["name"]), symlinks=True)
    print(
        f"fake monai.bundle download: {opts['name']} version {opts.get('version', 'latest')}",
        flush=True,
    )


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    {"run": run, "download": download}[command](options(rest))
