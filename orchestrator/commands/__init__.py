"""One module per ``unlearn`` subcommand, each with ``register(subparsers)``."""
