"""The one exception type for problems the user can fix (bad input, missing files, tampered checkpoints).

The CLI prints its message and exits with code 2, without a traceback. Anything else is a bug.
"""


class UserError(Exception):
    """A problem with the user's input; the message says what is wrong and how to fix it."""
