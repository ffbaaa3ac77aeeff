"""automl: hyperparameter search over PyTorch trial scripts, built on NNI's strategies.

Kept empty of imports on purpose: trial scripts import `automl.trial`, and
everything imported here would be paid on every trial start.
"""

__version__ = "0.1.0"
