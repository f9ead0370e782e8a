"""Errors that the command line reports as one clear line (exit code 2), without a traceback."""


class UserError(Exception):
    """Bad input or a refused action: the message says which file and what was expected."""


class InputFileError(UserError, ValueError):
    """An unusable input file; the message names the file, the line or row when known, and what was expected."""

    def __init__(self, path, message: str, row: str | None = None) -> None:
        self.path, self.row = str(path), row
        super().__init__(f"{path}: {row}: {message}" if row else f"{path}: {message}")


def one_line(message: str, limit: int | None = None) -> str:
    """`message` on one line (line breaks become " | "), cut to `limit` characters when given."""
    joined = " | ".join(line.strip() for line in message.strip().splitlines() if line.strip())
    return joined if limit is None or len(joined) <= limit else joined[: limit - 3] + "..."
