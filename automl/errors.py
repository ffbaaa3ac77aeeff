"""Errors a user can cause: reported as one clear message and exit code 2."""


class UserError(Exception):
    """A mistake in the user's input (config, search space, command line); nothing was started."""

    exit_code = 2


class DaemonError(Exception):
    """The daemon could not do what was asked, through no fault of the request (reported, exit code 1)."""

    exit_code = 1
