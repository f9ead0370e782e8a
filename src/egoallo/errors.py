"""Errors that the command line reports as one clear line (exit code 2), without a traceback."""


class UserError(Exception):
    """Bad input or a refused action: the message says which file and what was expected."""
