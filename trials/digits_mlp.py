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

import torch
from digits_common import standardized, train
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


def build_model(hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden_size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def main() -> None:
    p = trial.get_params(DEFAULTS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(int(p["seed"]))

    data = standardized(device)
    model = build_model(int(p["hidden_size"]), int(p["num_layers"]), float(p["dropout"])).to(device)
    train(model, p, data, device)


if __name__ == "__main__":
    main()
