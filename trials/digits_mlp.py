"""A PyTorch MLP on the 8x8 digits: the smallest complete automl trial script.

Shows the whole trial API: `trial.get_params(defaults)` overlays the tuner's
choices on the defaults below, `trial.report(acc)` sends the validation
accuracy after every epoch (what early stopping and the dashboard look at) and
`trial.report_final(best)` sends the result the tuner learns from.

The data is scikit-learn's bundled digits set (1797 images, 10 classes, no
download), split 80/20 stratified with a fixed seed so that every trial is
scored on the same validation images.

Standalone, with the defaults (metrics print to stderr):

    python trials/digits_mlp.py

With chosen parameters:

    echo '{"lr": 0.003, "hidden_size": 128}' > /tmp/p.json
    AUTOML_PARAMS_FILE=/tmp/p.json python trials/digits_mlp.py

In an experiment: `automl run trials/digits_mlp.yml`.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from automl import trial

DEFAULTS = {
    "lr": 0.003,  # learning rate
    "hidden_size": 256,  # units per hidden layer
    "num_layers": 2,  # hidden layers
    "dropout": 0.1,  # dropout after each hidden layer
    "batch_size": 64,
    "weight_decay": 1e-4,
    "optimizer": "adam",  # adam | adamw | sgd; or a nested choice {"_name": "sgd", "momentum": 0.9, ...}
    "momentum": 0.9,  # sgd only
    "epochs": 40,
    "seed": 0,  # weight initialization and batch order; the train/validation split is fixed
}


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


def build_model(hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden_size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def make_optimizer(name: str, model: nn.Module, p: dict) -> torch.optim.Optimizer:
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


def main() -> None:
    p = trial.get_params(DEFAULTS)
    optimizer_name = p["optimizer"]
    if isinstance(optimizer_name, dict):  # a nested choice: its own values override the flat ones
        p = {**p, **{k: v for k, v in optimizer_name.items() if k != "_name"}}
        optimizer_name = optimizer_name["_name"]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(int(p["seed"]))

    x_train, y_train, x_val, y_val = split(*load_digits())
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # corner pixels that are blank in every training image
    x_train = torch.from_numpy((x_train - mean) / std).to(device)
    x_val = torch.from_numpy((x_val - mean) / std).to(device)
    y_train = torch.from_numpy(y_train).to(device)
    y_val = torch.from_numpy(y_val).to(device)

    model = build_model(int(p["hidden_size"]), int(p["num_layers"]), float(p["dropout"])).to(device)
    optimizer = make_optimizer(optimizer_name, model, p)
    epochs = int(p["epochs"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # decays lr to 0 at the end
    loss_fn = nn.CrossEntropyLoss()
    batch_size = int(p["batch_size"])

    best = 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        # The whole set sits in one tensor: slicing it is much cheaper than a DataLoader.
        order = torch.randperm(len(y_train), device=device)
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        schedule.step()

        model.eval()
        with torch.no_grad():
            acc = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
        best = max(best, acc)
        trial.report(acc)

    trial.report_final(best)
    seconds = time.perf_counter() - start
    print(f"best validation accuracy {best:.4f} after {seconds:.1f}s of training on {device}")


if __name__ == "__main__":
    main()
