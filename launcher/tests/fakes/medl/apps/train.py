"""Fake `python -m medl.apps.train -m MMAR -c CONFIG -e ENV [--write_train_stats] [--set K=V ...]`
(Clara Train 4.x's command line, `clara-mmar.md` §2)."""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from trainer_common import train  # noqa: E402

# The launcher's secrets, which a trainer should never see (the launcher test asserts it).
CREDENTIALS = ("NGC_API_KEY", "NGC_CLI_API_KEY", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")


def main() -> None:
    parser = argparse.ArgumentParser(prog="medl.apps.train")
    parser.add_argument("-m", "--mmar", required=True)
    parser.add_argument("-c", "--train_config", required=True)
    parser.add_argument("-e", "--env", required=True)
    parser.add_argument("-l", "--log_config")
    parser.add_argument("--write_train_stats", action="store_true")
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()

    with open(os.path.join(args.mmar, args.env)) as f:
        variables = json.load(f)
    with open(os.path.join(args.mmar, args.train_config)) as f:
        config = json.load(f)
    variables.update({k: v for k, v in config.items() if not isinstance(v, (dict, list))})
    for item in args.set:
        key, _, value = item.partition("=")
        variables[key] = value
    print(
        f"fake medl.apps.train: config {args.train_config}, model {config['model']['name']}",
        flush=True,
    )
    seen = [name for name in CREDENTIALS if name in os.environ]
    print(f"fake medl.apps.train: credentials in its environment: {seen or 'none'}", flush=True)

    with open(variables["DATASET_JSON"]) as f:
        datalist = json.load(f)
    for entry in datalist["training"] + datalist.get("validation", []):
        for key in ("image", "label"):
            with open(os.path.join(variables["DATA_ROOT"], entry[key]), "rb") as f:
                f.read()
    print(f"fake medl.apps.train: {len(datalist['training'])} training cases", flush=True)

    ckpt_dir = os.path.join(args.mmar, variables.get("MMAR_CKPT_DIR", "models"))
    names = {n: n for n in ("train_loss", "train_acc", "val_mean_dice", "val_acc")}
    train(
        epochs=int(variables.get("epochs", 2)),
        ckpt_dir=ckpt_dir,
        tb_dir=ckpt_dir,
        names=names,
        fail_at=int(variables.get("fail_at_epoch", 0)),
        epoch_seconds=float(variables.get("epoch_seconds", 0)),
    )
    if args.write_train_stats:
        with open(os.path.join(ckpt_dir, "train_stats.json"), "w") as f:
            json.dump({"epochs": int(variables.get("epochs", 2))}, f)


if __name__ == "__main__":
    main()
