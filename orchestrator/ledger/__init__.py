"""The deletion-request ledger and the scheduled, verified batches: :mod:`.db` (SQLite schema, migrations,
requests / batches / versions), :mod:`.intake` (requests from files), :mod:`.versions` (registered checkpoints),
:mod:`.lease` (one scheduler at a time, fencing), :mod:`.transitions` (state changes), :mod:`.scheduler` (batch ->
train -> verify -> promote), :mod:`.executors` (how a batch is trained and verified), :mod:`.verification` (the
pass/fail rule), :mod:`.views` (tables for the CLI). See docs/ledger.md."""
