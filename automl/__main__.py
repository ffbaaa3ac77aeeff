"""`python -m automl` is the `automl` command."""

import sys

from .cli.commands import main

sys.exit(main())
