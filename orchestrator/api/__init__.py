"""The public Python API (docs/python-api.md), re-exported lazily from :mod:`orchestrator`: thin functions over the
CLI commands, with the same validation, the same files and results rows, and the same ``UserError`` messages."""
