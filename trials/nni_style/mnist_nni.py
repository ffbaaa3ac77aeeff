"""An NNI trial script, unchanged: the migration example.

This is how a trial is written for NNI (the layout of NNI's own mnist
example): `nni.get_next_parameter()` merged into the defaults,
`nni.report_intermediate_result(acc)` after every epoch and
`nni.report_final_result(acc)` at the end. automl runs such scripts and their
`config.yml` without edits. It trains a PyTorch MLP on scikit-learn's bundled
8x8 digits (1797 images, 10 classes, no download).

Standalone (NNI hands it `{}`, so it trains with the defaults):

    cd trials/nni_style && python mnist_nni.py

In an experiment: `automl run trials/nni_style/config.yml`.
"""

from __future__ import annotations

import logging

import nni
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

logger = logging.getLogger("mnist_nni")


def get_default_params() -> dict:
    return {
        "lr": 0.003,
        "hidden_size": 256,
        "num_layers": 2,
        "dropout": 0.1,
        "batch_size": 64,
        "weight_decay": 1e-4,
        "epochs": 40,
        "seed": 0,
    }


def load_data(device: torch.device):
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    def tensors(a, b):
        return torch.tensor(a, dtype=torch.float32, device=device), torch.tensor(b, device=device)

    return (*tensors(x_train, y_train), *tensors(x_val, y_val))


def build_model(hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden_size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def main(params: dict) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(params["seed"])
    x_train, y_train, x_val, y_val = load_data(device)

    model = build_model(params["hidden_size"], params["num_layers"], params["dropout"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params["epochs"])
    loss_fn = nn.CrossEntropyLoss()
    batch_size = params["batch_size"]

    best = 0.0
    for epoch in range(params["epochs"]):
        model.train()
        order = torch.randperm(len(y_train), device=device)
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        scheduler.step()

        model.eval()
        with torch.no_grad():
            acc = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
        best = max(best, acc)
        logger.debug("epoch %d: validation accuracy %.4f", epoch + 1, acc)
        nni.report_intermediate_result(acc)

    logger.debug("best validation accuracy %.4f", best)
    nni.report_final_result(best)


if __name__ == "__main__":
    try:
        params = get_default_params()
        params.update(nni.get_next_parameter())
        logger.debug(params)
        main(params)
    except Exception:
        logger.exception("trial failed")
        raise
