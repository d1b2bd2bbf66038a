"""Request and subject ids are untrusted text (issue 18, case 9): bounded and NUL-free at intake, a zone required
on ``received_at``, and escaped on every display so they cannot forge rows or drive the terminal."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from orchestrator.ledger.safe_text import MAX_ID_CHARS, printable
from tests.ledger_fakes import make_base_checkpoint, registered_ledger


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained")


@pytest.fixture
def ledger(tmp_path, base_ckpt, monkeypatch):
    path, splits = registered_ledger(tmp_path, base_ckpt, monkeypatch)
    return path, [int(i) for i in splits["member"]]


def test_printable_escapes_controls_and_keeps_plain_text():
    assert printable("alice") == "alice" and printable("Zoë 日本") == "Zoë 日本"
    assert printable("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert printable("\x1b[2J\x00\u202e") == "\\x1b[2J\\x00\\u202e"
    assert printable(7) == "7"


def test_a_forged_row_and_an_ansi_escape_are_shown_escaped(ledger, capsys):
    path, members = ledger
    forged = "mallory\nreq-999999  victim  1  verified"
    assert main(["requests", "add", "--subject", forged, "--sample-ids", str(members[0])]) == 0
    assert main(["requests", "add", "--subject", "eve\x1b[2J\x1b[H", "--sample-ids", str(members[1]),
                 "--request-id", "r\x1b]0;pwned\x07"]) == 0
    capsys.readouterr()
    assert main(["requests", "list"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3  # header + 2 rows: the newline in the id forged nothing
    assert "\x1b" not in out and "\x07" not in out
    assert "mallory\\nreq-999999" in out and "eve\\x1b[2J" in out
    assert main(["requests", "show", "r\x1b]0;pwned\x07"]) == 0
    out = capsys.readouterr().out
    assert "r\\x1b]0;pwned\\x07" in out and "\x1b" not in out
    with Ledger(path) as led:  # stored as given: escaping is a matter of display
        assert led.list_requests()[0]["subject_id"] == forged


@pytest.mark.parametrize("argv, message", [
    (["--subject", "s" * (MAX_ID_CHARS + 1)], f"subject_id is {MAX_ID_CHARS + 1} characters long"),
    (["--subject", "s", "--request-id", "r" * 5_000_000], "request_id is 5000000 characters long"),
    (["--subject", "a\x00b"], "subject_id contains a NUL byte"),
    (["--subject", "s", "--received-at", "2026-03-01T10:00:00"], "has no time zone"),
    (["--subject", "s", "--received-at", "2026-03-01"], "has no time zone"),
    (["--subject", "s", "--received-at", "yesterday"], "is not an ISO-8601 time"),
])
def test_bad_ids_and_zoneless_times_are_refused_and_nothing_is_written(ledger, capsys, argv, message):
    path, members = ledger
    assert main(["requests", "add", *argv, "--sample-ids", str(members[0])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err) < 400
    with Ledger(path) as led:
        assert led.list_requests() == []


def test_a_file_row_with_a_nul_names_the_row(ledger, capsys, tmp_path):
    path, members = ledger
    f = tmp_path / "r.csv"
    f.write_bytes(b"subject_id,sample_ids\nok,%d\nbad\x00id,%d\n" % (members[0], members[1]))
    assert main(["requests", "add", "--file", str(f)]) == 2
    assert "row 2: subject_id contains a NUL byte" in capsys.readouterr().err
    assert main(["requests", "add", "--subject", "s", "--sample-ids", str(members[0]),
                 "--received-at", "2026-03-01T10:00:00+02:00"]) == 0
    with Ledger(path) as led:
        assert [r["received_at"] for r in led.list_requests()] == ["2026-03-01T10:00:00+02:00"]
