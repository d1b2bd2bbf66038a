"""Entry point for `ray submit cluster.yaml deploy/submit/unlearn.py -- COMMAND ARGS...`.

`ray submit` copies only this file to the head node and runs it there; the package itself is installed on every
node by cluster.yaml's setup_commands. Ray work joins the running cluster (RAY_ADDRESS=auto).
"""

import os
import sys

os.environ.setdefault("RAY_ADDRESS", "auto")

from orchestrator.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
