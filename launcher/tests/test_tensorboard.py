"""The launcher's TensorBoard reader against files written by a real writer (tensorboardX, as
MONAI's and Clara's handlers write them): every scalar with its step, a record cut in half by a
writer still writing is read once it is complete, and tags map to the operator's names."""

from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

import clara_launcher as launcher


def write_events(folder: Path, points):
    writer = SummaryWriter(logdir=str(folder))
    for tag, value, step in points:
        writer.add_scalar(tag, value, step)
    writer.close()
    [path] = folder.glob("events.out.tfevents.*")
    return path


def test_every_scalar_is_read_with_its_step(tmp_path: Path):
    points = [
        ("train_loss", 0.5, 1),
        ("train_loss", 0.25, 2),
        ("val_mean_dice", 0.75, 1),
        ("a/b", 2.0, 7),
    ]
    path = write_events(tmp_path, points)
    assert launcher.EventFileReader(str(path)).read_new() == [(t, i, v) for t, v, i in points]


def test_a_half_written_record_is_read_once_complete(tmp_path: Path):
    path = write_events(tmp_path / "full", [("val_acc", 0.5, 1), ("val_acc", 0.625, 2)])
    data = path.read_bytes()
    growing = tmp_path / "events.out.tfevents.growing"
    growing.write_bytes(data[:-10])
    reader = launcher.EventFileReader(str(growing))

    assert reader.read_new() == [("val_acc", 1, 0.5)]
    growing.write_bytes(data)
    assert reader.read_new() == [("val_acc", 2, 0.625)]
    assert reader.read_new() == []


def test_a_record_failing_its_checksum_is_skipped(tmp_path: Path):
    path = write_events(tmp_path, [("val_acc", 0.5, 1), ("val_acc", 0.75, 2)])
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # the last record's payload (its 4-byte checksum follows)
    path.write_bytes(bytes(data))
    assert launcher.EventFileReader(str(path)).read_new() == [("val_acc", 1, 0.5)]


def test_a_corrupt_length_stops_reading_that_file(tmp_path: Path, capsys):
    path = write_events(tmp_path, [("val_acc", 0.5, 1)])
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # the first record's length, guarded by its own checksum
    path.write_bytes(bytes(data))
    reader = launcher.EventFileReader(str(path))
    assert reader.read_new() == [] and reader.broken
    assert "has a corrupt record" in capsys.readouterr().out


@pytest.mark.parametrize(
    "tag, names",
    [
        ("val_mean_dice", ("val_mean_dice", "val_mean_dice")),
        ("val_accuracy", ("val_acc", "val_acc")),
        ("train_accuracy", ("train_acc", "train_acc")),
        ("train_loss", ("train_loss", "train_loss")),
        ("Loss/train", ("Loss", "train")),
        ("lr", ("lr", "lr")),
    ],
)
def test_tags_are_reported_under_the_operator_names(tag, names):
    assert launcher.operator_name(tag) == names


def test_the_forwarder_reports_files_appearing_while_training_runs(tmp_path: Path):
    reported = []
    forwarder = launcher.ScalarForwarder(
        str(tmp_path), lambda t, s, v, i: reported.append((t, s, v, i))
    )
    forwarder.poll()
    write_events(tmp_path / "models", [("val_accuracy", 0.5, 1)])
    forwarder.poll()
    forwarder.poll()
    assert reported == [("val_acc", "val_acc", 0.5, 1)]
