"""What the digits examples share: the data, the optimizer choice and the training loop that reports to automl.

The data is scikit-learn's bundled digits set (1797 8x8 images, 10 classes, no
download), split 80/20 stratified with a fixed seed so that every trial is
scored on the same validation images.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from automl import trial


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (1797x64 float32 pixels, labels), without importing scikit-learn.

    `sklearn.datasets.load_digits` reads this same bundled file; importing
    scikit-learn would add about a second to every trial's start.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("this example needs scikit-learn installed for its bundled digits data")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if path.exists():
        data = np.loadtxt(path, delimiter=",", dtype=np.float32)
        return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_load_digits  # other layout: the slow way

    x, y = sklearn_load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray, val_fraction: float = 0.2, seed: int = 0):
    """Stratified train/validation split, the same for every trial."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    val = np.concatenate([idx[: round(len(idx) * val_fraction)] for idx in per_class])
    train = np.setdiff1d(np.arange(len(y)), val)
    return x[train], y[train], x[val], y[val]


def standardized(device: torch.device) -> tuple[torch.Tensor, ...]:
    """The split as tensors on `device`, each pixel scaled by the training images' mean and spread:
    (x_train, y_train, x_val, y_val)."""
    x_train, y_train, x_val, y_val = split(*load_digits())
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # corner pixels that are blank in every training image
    return (
        torch.from_numpy((x_train - mean) / std).to(device),
        torch.from_numpy(y_train).to(device),
        torch.from_numpy((x_val - mean) / std).to(device),
        torch.from_numpy(y_val).to(device),
    )


def resolve_optimizer(p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The optimizer's name, and the params with a nested choice's own values (e.g. its lr) laid over the flat ones."""
    choice = p["optimizer"]
    if isinstance(choice, dict):
        return choice["_name"], {**p, **{k: v for k, v in choice.items() if k != "_name"}}
    return choice, p


def make_optimizer(name: str, model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam, AdamW or Nesterov SGD with the trial's lr, weight decay and momentum."""
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=p["lr"],
            momentum=p["momentum"],
            weight_decay=p["weight_decay"],
            nesterov=True,
        )
    raise ValueError(f"unknown optimizer {name!r} (adam, adamw or sgd)")


def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> None:
    """One pass over the training set in a random order, in mini-batches, with cross-entropy loss."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    # The whole set sits in one tensor: slicing it is much cheaper than a DataLoader.
    order = torch.randperm(len(y), device=x.device)
    for i in range(0, len(order), batch_size):
        batch = order[i : i + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x[batch]), y[batch]).backward()
        optimizer.step()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The share of `x` that `model` classifies as `y`."""
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train(model: nn.Module, p: dict[str, Any], data: tuple[torch.Tensor, ...], device: torch.device) -> None:
    """Train with a cosine-decayed lr; report validation accuracy every epoch and the best one at the end."""
    x_train, y_train, x_val, y_val = data
    name, p = resolve_optimizer(p)
    optimizer = make_optimizer(name, model, p)
    epochs = int(p["epochs"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # decays lr to 0 at the end

    best = 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, optimizer, x_train, y_train, int(p["batch_size"]))
        schedule.step()
        acc = accuracy(model, x_val, y_val)
        best = max(best, acc)
        trial.report(acc)

    trial.report_final(best)
    seconds = time.perf_counter() - start
    print(f"best validation accuracy {best:.4f} after {seconds:.1f}s of training on {device}")
