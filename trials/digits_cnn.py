"""A small PyTorch CNN on the 8x8 digit images: an automl trial script for a conv net.

Same conventions as `digits_mlp.py`: `trial.get_params(defaults)` overlays the
tuner's choices on the defaults below, `trial.report(acc)` sends the
validation accuracy after every epoch and `trial.report_final(best)` the best
one. The images go in as 1x8x8 tensors; two 3x3 conv layers, a 2x2 max-pool
and two linear layers classify them. Data: scikit-learn's bundled digits
(1797 images, 10 classes, no download), split 80/20 stratified with a fixed
seed so that every trial is scored on the same validation images.

Standalone, with the defaults (metrics print to stderr):

    python trials/digits_cnn.py

With chosen parameters:

    echo '{"channels": 16, "lr": 0.005}' > /tmp/p.json
    AUTOML_PARAMS_FILE=/tmp/p.json python trials/digits_cnn.py

In an experiment: `automl run trials/digits_cnn.yml`.
"""

from __future__ import annotations

import torch
from digits_common import load_digits, split, train
from torch import nn

from automl import trial

DEFAULTS = {
    "lr": 0.003,  # learning rate
    "channels": 32,  # filters in the first conv layer; the second has twice as many
    "fc_size": 128,  # units in the hidden linear layer
    "dropout": 0.2,  # before the last linear layer
    "batch_size": 64,
    "weight_decay": 1e-4,
    "optimizer": "adam",  # adam | adamw | sgd; or a nested choice {"_name": "sgd", "momentum": 0.9, ...}
    "momentum": 0.9,  # sgd only
    "epochs": 15,
    "seed": 0,  # weight initialization and batch order; the train/validation split is fixed
}


def build_model(channels: int, fc_size: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1),  # 8x8
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),  # 8x8
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Flatten(),
        nn.Linear(2 * channels * 4 * 4, fc_size),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_size, 10),
    )


def main() -> None:
    p = trial.get_params(DEFAULTS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(int(p["seed"]))

    x_train, y_train, x_val, y_val = split(*load_digits())
    # One mean and scale for all pixels (not per pixel), so that the images keep their shape.
    mean, std = x_train.mean(), x_train.std()
    x_train = torch.from_numpy((x_train - mean) / std).reshape(-1, 1, 8, 8).to(device)
    x_val = torch.from_numpy((x_val - mean) / std).reshape(-1, 1, 8, 8).to(device)
    y_train = torch.from_numpy(y_train).to(device)
    y_val = torch.from_numpy(y_val).to(device)

    model = build_model(int(p["channels"]), int(p["fc_size"]), float(p["dropout"])).to(device)
    train(model, p, (x_train, y_train, x_val, y_val), device)


if __name__ == "__main__":
    main()
