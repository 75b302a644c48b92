"""What both fake trainers share: the scalar curves, the TensorBoard writer and the model files."""

import os
import sys
import time
from typing import Dict

from tensorboardX import SummaryWriter

ITERATIONS_PER_EPOCH = 3


def train(
    *,
    epochs: int,
    ckpt_dir: str,
    tb_dir: str,
    names: Dict[str, str],
    fail_at: int,
    epoch_seconds: float = 0.0,
) -> None:
    """Writes per-iteration loss and per-epoch accuracy/dice scalars under the given tag names,
    then model.pt and final_model.pt, printing StatsHandler-like lines."""
    os.makedirs(ckpt_dir, exist_ok=True)
    writer = SummaryWriter(logdir=tb_dir)
    iteration = 0
    for epoch in range(1, epochs + 1):
        if epoch == fail_at:
            print(f"Epoch[{epoch}] RuntimeError: CUDA out of memory (fake)", flush=True)
            writer.close()
            sys.exit(1)
        time.sleep(epoch_seconds)
        for _ in range(ITERATIONS_PER_EPOCH):
            iteration += 1
            loss = round(1.0 / (iteration + 1), 4)
            writer.add_scalar(names["train_loss"], loss, iteration)
            print(
                f"Epoch: {epoch}/{epochs}, Iter: {iteration} -- train_loss: {loss:.4f}", flush=True
            )
        dice = round(0.5 + 0.4 * epoch / epochs, 4)
        acc = round(0.6 + 0.3 * epoch / epochs, 4)
        writer.add_scalar(names["train_acc"], round(acc - 0.05, 4), epoch)
        writer.add_scalar(names["val_mean_dice"], dice, epoch)
        writer.add_scalar(names["val_acc"], acc, epoch)
        writer.flush()
        print(
            f"Epoch[{epoch}] Metrics -- {names['val_mean_dice']}: {dice:.4f} "
            f"{names['val_acc']}: {acc:.4f}",
            flush=True,
        )
        with open(os.path.join(ckpt_dir, "model.pt"), "wb") as f:
            f.write(f"fake state dict, best at epoch {epoch}".encode())
    with open(os.path.join(ckpt_dir, "final_model.pt"), "wb") as f:
        f.write(b"fake state dict, final")
    writer.close()
    print("Training finished", flush=True)
