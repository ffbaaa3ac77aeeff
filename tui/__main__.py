"""`python -m tui [EXP]`: the dashboard, as `automl tui [EXP]` runs it."""

import argparse
import sys

from .cli import add_command

parser = argparse.ArgumentParser(prog="automl")
add_command(parser.add_subparsers(dest="command"))
args = parser.parse_args(["tui", *sys.argv[1:]])
sys.exit(args.handler(args))
