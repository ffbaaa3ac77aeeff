"""The experiment config: its model and checks, NNI's config format translated, and search spaces."""
