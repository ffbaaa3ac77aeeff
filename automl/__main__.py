"""`python -m automl` is the `automl` command."""

import sys

from .cli import main

sys.exit(main())
