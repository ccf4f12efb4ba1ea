"""One exception type for problems a user can fix: the CLI prints its message on one line, no traceback."""


class EmotuneError(Exception):
    """A problem with the user's input (file, config, data), described in one line."""
