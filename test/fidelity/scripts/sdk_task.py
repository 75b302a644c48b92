"""Runs inside the fidelity suite as a task attached by CLEARML_TASK_ID, like the launcher does
under an agent: reads its argparse overrides from the task, reports scalars and text, uploads an
OutputModel, and writes what it reported to the JSON file named by $FIDELITY_REPORT (paths come
from the environment because the SDK parses the real command line for argparse)."""
import argparse
import json
import logging
import os

from clearml import OutputModel, Task

SCALARS = ("val_mean_dice", "val_acc", "train_loss", "train_acc")


def main() -> None:
    report_path = os.environ["FIDELITY_REPORT"]
    weights_path = os.environ["FIDELITY_WEIGHTS"]
    task = Task.init(project_name="Fidelity", task_name="ignored-when-attached")
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--arch", default="SegResNet")
    args = parser.parse_args()

    logger = task.get_logger()
    series = {name: [] for name in SCALARS}
    for i in range(1, args.epochs + 1):
        for k, name in enumerate(SCALARS):
            value = round(0.1 * i + 0.01 * k, 4) if name != "train_loss" else round(1.0 / i, 4)
            logger.report_scalar(name, name, value=value, iteration=i)
            series[name].append([i, value])
    # Under an agent the SDK leaves console capture to the agent; an explicit warning-level
    # text with print_console=False is still sent by the SDK itself.
    logger.report_text("fidelity text line", level=logging.WARNING, print_console=False)

    with open(weights_path, "wb") as f:
        f.write(b"fidelity-weights-" + task.id.encode())
    model = OutputModel(task=task, name="fidelity-model", framework="PyTorch")
    model.update_weights(weights_filename=weights_path, upload_uri=os.environ["CLEARML_FILES_HOST"])
    task.flush(wait_for_uploads=True)

    with open(report_path, "w") as f:
        json.dump(
            {
                "task_id": task.id,
                "args": vars(args),
                "series": series,
                "model_id": model.id,
                "model_url": model.url,
            },
            f,
        )
    task.close()


if __name__ == "__main__":
    main()
