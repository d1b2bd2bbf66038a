"""The Parquet results store: exact schema round trip, concurrent appends lose nothing, extras never break it."""

from __future__ import annotations

import json
import multiprocessing as mp

import pandas as pd
import pyarrow as pa
import pytest

from orchestrator.results import store as results
from trainables.errors import UserError


def _row(i: int, kind: str = "unlearn", **extra):
    extra.setdefault("trial_id", f"t{i}")
    return results.make_row(
        kind=kind, dataset="digits", model="simclr", backbone="small_cnn", method="gp", forget_size=10 + i,
        hyperparameters={"unlearn": {"a": 1.0, "b": float(i), "form": "wgan", "new_knob": [1, 2]},
                                           "optim": {"lr": 1e-3}},
        metrics={"before": {"mia_accuracy": 0.7, "mia_accuracy_lo": 0.65, "mia_accuracy_hi": 0.75},
                 "after": {"mia_accuracy": 0.5 + i / 1000, "brand_new_metric": 3.0}}, **extra)


def test_round_trip_gives_the_schema_exactly(tmp_path):
    results.append(str(tmp_path), [_row(0), _row(1, kind="evaluate", attack="encodermi_vector")])
    df = results.load(str(tmp_path))
    assert list(df.columns) == results.SCHEMA.names
    for field in results.SCHEMA:
        assert isinstance(df[field.name].dtype, pd.ArrowDtype), field.name
        assert df[field.name].dtype.pyarrow_dtype == field.type, field.name
    back = pa.Table.from_pandas(df, schema=results.SCHEMA, preserve_index=False)
    assert back.schema.equals(results.SCHEMA)
    assert df["dataset"].dtype == pd.ArrowDtype(pa.string())  # pandas 3 strings stay Arrow strings
    row = df.set_index("trial_id").loc["t1"]
    assert row["kind"] == "evaluate" and row["schema_version"] == results.SCHEMA_VERSION
    assert row["hp_a"] == 1.0 and row["hp_b"] == 1.0 and row["hp_lr"] == 1e-3 and row["hp_form"] == "wgan"
    assert row["before_mia_accuracy_lo"] == 0.65 and row["after_mia_accuracy"] == pytest.approx(0.501)
    assert pd.isna(row["retrain_mia_accuracy"])  # missing is null, not 0
    # unknown hyperparameters and metrics land in the JSON columns, by their full key
    assert json.loads(row["hp_json"])["unlearn.new_knob"] == [1, 2]
    assert json.loads(row["metrics_json"])["after"]["brand_new_metric"] == 3.0
    assert row["git_sha"] and "torch" in json.loads(row["packages_json"])


def test_layout_is_partitioned_and_kind_filter_works(tmp_path):
    results.append(str(tmp_path), [_row(0), _row(1, kind="evaluate")])
    assert len(list(tmp_path.glob("kind=unlearn/date=*/part-*.parquet"))) == 1
    assert len(list(tmp_path.glob("kind=evaluate/date=*/part-*.parquet"))) == 1
    assert list(results.load(str(tmp_path), kinds=["evaluate"])["kind"]) == ["evaluate"]
    assert results.load(str(tmp_path / "absent")).shape == (0, len(results.SCHEMA))


def _writer(path: str, worker: int, n: int) -> None:
    for i in range(n):
        results.append(path, [_row(worker * 1000 + i, trial_id=f"w{worker}-{i}")])


def test_two_processes_appending_concurrently_lose_no_row(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    df = results.load(str(tmp_path))
    assert len(df) == 50
    assert set(df["trial_id"]) == {f"w{w}-{i}" for w in range(2) for i in range(25)}
    assert df["row_id"].nunique() == 50
    assert not list(tmp_path.rglob(".*.tmp"))  # no temporary file left behind


def test_bad_rows_are_user_errors_and_write_nothing(tmp_path):
    with pytest.raises(UserError, match="kind"):
        results.append(str(tmp_path), [{"kind": "party"}])
    with pytest.raises(UserError, match="unknown result columns"):
        results.append(str(tmp_path), [{"kind": "evaluate", "colour": "red"}])
    with pytest.raises(UserError, match="does not fit"):
        results.append(str(tmp_path), [{"kind": "evaluate", "forget_size": "many"}])
    with pytest.raises(UserError, match="stage"):
        results.make_row(kind="evaluate", metrics={"during": {"x": 1}})
    assert not any(tmp_path.iterdir())


def test_older_files_with_fewer_columns_read_as_nulls(tmp_path):
    import pyarrow.parquet as pq

    folder = tmp_path / "kind=pretrain" / "date=2020-01-01"
    folder.mkdir(parents=True)
    old = pa.table({"schema_version": pa.array([0], pa.int32()), "kind": ["pretrain"], "dataset": ["digits"]})
    pq.write_table(old, folder / "part-old.parquet")
    df = results.load(str(tmp_path))
    assert len(df) == 1 and df.loc[0, "dataset"] == "digits" and pd.isna(df.loc[0, "after_mia_auc"])
    assert list(df.columns) == results.SCHEMA.names


def test_object_store_branch_writes_whole_objects(monkeypatch):
    """A non-local filesystem (here pyarrow's in-memory mock, standing in for s3://) gets direct object writes."""
    from pyarrow._fs import _MockFileSystem

    fs = _MockFileSystem()
    monkeypatch.setattr(results, "filesystem", lambda path: (fs, "bucket/results"))
    written = results.append("s3://bucket/results", [_row(0), _row(1)])
    assert len(written) == 1 and written[0].startswith("bucket/results/kind=unlearn/")
    df = results.load("s3://bucket/results")
    assert len(df) == 2 and list(df.columns) == results.SCHEMA.names


def _old_layout_store(root) -> None:
    """A store as the tools wrote it before the hive layout: ``kind`` inside every file and in the folder name."""
    import pyarrow.parquet as pq

    table = results.to_table([_row(7, kind="evaluate", trial_id="old")])
    folder = root / "kind=evaluate" / "date=2026-01-01"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-old.parquet")


def test_files_hold_no_partition_column_and_every_reader_reads_the_store(tmp_path):
    """pandas / pyarrow / DuckDB (the snippets in docs/results.md) all read what append writes, kind from the
    folder; the project's own load still gives the exact schema."""
    import duckdb
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    results.append(str(tmp_path), [_row(0), _row(1, kind="evaluate"), _row(2, kind="evaluate")])
    for f in tmp_path.rglob("part-*.parquet"):
        assert "kind" not in pq.read_schema(f).names and pq.read_schema(f).equals(results.FILE_SCHEMA)
    df = pd.read_parquet(tmp_path)
    assert sorted(df["kind"].astype(str)) == ["evaluate", "evaluate", "unlearn"] and len(df) == 3
    assert pq.read_table(tmp_path).num_rows == 3
    table = ds.dataset(tmp_path, partitioning="hive").to_table(filter=ds.field("kind") == "evaluate")
    assert sorted(table.column("trial_id").to_pylist()) == ["t1", "t2"]
    rows = duckdb.sql(f"SELECT kind, count(*) FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true) "
                      "GROUP BY kind ORDER BY kind").fetchall()
    assert rows == [("evaluate", 2), ("unlearn", 1)]
    loaded = results.load(str(tmp_path))
    assert list(loaded.columns) == results.SCHEMA.names and sorted(loaded["kind"]) == ["evaluate", "evaluate", "unlearn"]


def test_an_old_layout_store_stays_readable_by_load_and_takes_new_rows(tmp_path):
    _old_layout_store(tmp_path)
    results.append(str(tmp_path), [_row(1, kind="evaluate", trial_id="new"), _row(2, kind="pretrain")])
    df = results.load(str(tmp_path))
    assert sorted(df["trial_id"]) == ["new", "old", "t2"]
    assert df.set_index("trial_id").loc["old", "kind"] == "evaluate"
    assert list(results.load(str(tmp_path), kinds=["evaluate"])["trial_id"].sort_values()) == ["new", "old"]


def test_the_documented_rewrite_makes_an_old_store_readable_by_pandas(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _old_layout_store(old)
    with pytest.raises(pa.ArrowTypeError):
        pd.read_parquet(old)
    results.append(str(new), [r for r in results.load(str(old)).to_dict("records")])  # as docs/results.md says
    assert list(pd.read_parquet(new)["trial_id"]) == ["old"]
    pd.testing.assert_frame_equal(results.load(str(new)), results.load(str(old)))


def test_docs_reader_snippets_run(tmp_path):
    """The pandas / pyarrow / DuckDB blocks of docs/results.md, run against a store the tools wrote."""
    import re
    from pathlib import Path

    results.append(str(tmp_path), [_row(0), _row(1, kind="evaluate")])
    text = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    section = text.split("## Reading a store with other tools", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3
    for code in blocks:
        scope: dict = {}
        exec(code.replace("runs/results", str(tmp_path)), scope)
        assert len(scope["df"]) == 2 and set(scope["df"]["kind"].astype(str)) == {"unlearn", "evaluate"}


def test_unreachable_uri_is_a_user_error():
    with pytest.raises(UserError, match="cannot open results path"):
        results.load("nosuchscheme://x/y")
