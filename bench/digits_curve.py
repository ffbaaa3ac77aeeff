"""The digits MLP as a multi-fidelity problem: real PyTorch training, one epoch per call, for the simulated launcher.

The model, data and training epoch are the digits example's
(trials/digits_mlp.py and trials/digits_common.py); the search space is wider
than the example's, so that configurations differ. The value at an epoch is the
validation error (1 - accuracy) after it, with the learning rate decayed by a
cosine over `EPOCHS`. Training is deterministic for a seed and configuration
(each has its own random state), and a trial's model is kept between its
epochs, so a curve costs one training pass.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trials"))

from digits_common import accuracy, make_optimizer, standardized, train_epoch  # noqa: E402
from digits_mlp import build_model  # noqa: E402

EPOCHS = 27
SPACE: dict[str, Any] = {
    "optimizer": {"_type": "choice", "_value": ["adam", "sgd"]},
    "lr": {"_type": "loguniform", "_value": [1e-4, 0.3]},
    "hidden_size": {"_type": "choice", "_value": [16, 32, 64, 128, 256]},
    "num_layers": {"_type": "choice", "_value": [1, 2, 3]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.6]},
    "batch_size": {"_type": "choice", "_value": [16, 32, 64, 128, 256]},
    "weight_decay": {"_type": "loguniform", "_value": [1e-6, 1e-2]},
}
KEPT = 32  # models kept for their next epoch; a run has at most a few trials going at once


class DigitsCurve:
    """`curve(params, epoch)`: the validation error after `epoch` epochs (1-based) of training with `params`."""

    def __init__(self, seed: int) -> None:
        torch.set_num_threads(1)
        self.seed = seed
        self.data = standardized(torch.device("cpu"))
        self._values: dict[tuple[str, int], float] = {}
        self._training: OrderedDict[tuple[str, int], tuple[Any, ...]] = OrderedDict()

    def __call__(self, params: dict[str, Any], epoch: int) -> float:
        key = json.dumps(params, sort_keys=True)
        if (key, epoch) not in self._values:
            self._train_to(key, params, epoch)
        return self._values[key, epoch]

    def _train_to(self, key: str, params: dict[str, Any], epoch: int) -> None:
        done = max((e for e in range(epoch) if (key, e) in self._training), default=0)
        state = self._training.pop((key, done)) if done else self._start(key, params)
        x_train, y_train, x_val, y_val = self.data
        model, optimizer, schedule, random_state = state
        torch.set_rng_state(random_state)
        for e in range(done + 1, epoch + 1):
            train_epoch(model, optimizer, x_train, y_train, int(params["batch_size"]))
            schedule.step()
            self._values[key, e] = 1.0 - accuracy(model, x_val, y_val)
        self._training[key, epoch] = (model, optimizer, schedule, torch.get_rng_state())
        while len(self._training) > KEPT:
            self._training.popitem(last=False)

    def _start(self, key: str, params: dict[str, Any]) -> tuple[Any, ...]:
        torch.manual_seed(zlib.crc32(key.encode()) ^ self.seed)
        model = build_model(int(params["hidden_size"]), int(params["num_layers"]), float(params["dropout"]))
        p = {**params, "momentum": 0.9}
        optimizer = make_optimizer(params["optimizer"], model, p)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
        return model, optimizer, schedule, torch.get_rng_state()
