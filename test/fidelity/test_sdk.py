"""The real clearml SDK against the emulator, checked through the operator's TypeScript client."""
import json
from pathlib import Path
from typing import Any, Dict
from urllib.request import urlopen

HYPERPARAMS = {
    "Args": {
        "epochs": {"section": "Args", "name": "epochs", "value": "4", "type": "int"},
        "arch": {"section": "Args", "name": "arch", "value": "UNet", "type": "str"},
    }
}


def metric_summaries(task: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {s["metric"]: s for variants in task["last_metrics"].values() for s in variants.values()}


def test_sdk_task_attached_by_id_reports_what_the_client_reads_back(
    ts_client, python_script, tmp_path: Path
):
    extra = json.dumps({"hyperparams": HYPERPARAMS})
    created = ts_client("create-task", "Fidelity", "sdk-attached", extra)
    task_id = created["id"]
    report_file = tmp_path / "report.json"
    python_script(
        "sdk_task.py",
        extra_env={
            "CLEARML_TASK_ID": task_id,
            "FIDELITY_REPORT": str(report_file),
            "FIDELITY_WEIGHTS": str(tmp_path / "weights.pt"),
        },
    )
    report = json.loads(report_file.read_text())

    # The SDK attached to our task and took its argparse values from our hyperparameters.
    assert report["task_id"] == task_id
    assert report["args"] == {"epochs": 4, "arch": "UNet"}

    back = ts_client("read-back", task_id)
    task = back["task"]
    assert task["status"] == "in_progress"
    assert task["last_iteration"] == 4

    # Scalars: the histogram our client reads equals, point for point, what the SDK reported,
    # and last_metrics carries the last, min and max of each series.
    for name, points in report["series"].items():
        series = back["scalars"][name][name]
        assert [[x, y] for x, y in zip(series["x"], series["y"])] == points
        summary = metric_summaries(task)[name]
        values = [v for _, v in points]
        assert (summary["value"], summary["min_value"], summary["max_value"]) == (
            values[-1],
            min(values),
            max(values),
        )

    assert "fidelity text line" in back["log"]

    # The output model is linked to the task and its weights download byte for byte.
    models = {m["id"]: m for m in back["models"]}
    model = models[report["model_id"]]
    assert model["name"] == "fidelity-model"
    assert model["framework"] == "PyTorch"
    assert model["uri"] == report["model_url"]
    assert [m["model"] for m in task["models"]["output"]] == [report["model_id"]]
    with urlopen(model["uri"], timeout=10) as response:
        assert response.read() == b"fidelity-weights-" + task_id.encode()


def test_dataset_created_by_the_sdk_is_a_dataset_to_the_client_and_fetches_back(
    ts_client, python_script, tmp_path: Path
):
    data = tmp_path / "data"
    (data / "labels").mkdir(parents=True)
    (data / "image_001.txt").write_text("spleen volume 1")
    (data / "labels" / "label_001.json").write_text('{"label": 1}')

    out = python_script("dataset_create.py", str(data))
    dataset_id = next(
        line.split("=", 1)[1] for line in out.splitlines() if line.startswith("DATASET_ID=")
    )

    # What the operator checks before launch (reference §9.2): a completed task tagged dataset.
    back = ts_client("read-back", dataset_id)
    assert back["task"]["status"] == "completed"
    assert back["task"]["type"] == "data_processing"
    assert "dataset" in back["task"]["system_tags"]

    # Fetched again inside a task created by our client, as the launcher does.
    consumer = ts_client("create-task", "Fidelity", "dataset-consumer")["id"]
    listing = python_script(
        "dataset_fetch.py", dataset_id, extra_env={"CLEARML_TASK_ID": consumer}
    )
    files = {f["path"]: f["content"] for f in map(json.loads, listing.splitlines()) if f}
    assert files == {"image_001.txt": "spleen volume 1", "labels/label_001.json": '{"label": 1}'}
