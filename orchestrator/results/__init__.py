"""The results store: a partitioned Parquet dataset of every run, evaluation and batch (:mod:`.store`), and the
row builders for each kind (:mod:`.run_rows`, :mod:`.evaluation_rows`, :mod:`.batch_rows`). See docs/results.md."""
