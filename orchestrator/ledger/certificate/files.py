"""Issue a request's certificate (record its content hash in the ledger, write the file) and verify one later.

Issuing records the certificate's canonical facts and their sha256 in the ledger's ``certificates`` table and an
audit event ``certificate_issued``, in the same transaction that writes the file (a failed write records nothing).
Verifying a file checks, in order: it holds a certificate record; this ledger issued exactly these facts (else the
fields that differ are named); the file is byte for byte what those facts render to (else the first edited line);
the request is still verified (a rollback revokes it).

    path = write_certificate(ledger, "req-000003", "html", "cert.html")
    report = verify_certificate(ledger, "cert.html")      # UserError naming what does not match
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator.ledger.certificate.facts import CERTIFICATE_FORMAT, certificate_facts, content_sha256
from orchestrator.ledger.certificate.render import FORMATS, extract, render
from orchestrator.ledger.db import Ledger
from trainables.errors import UserError


def check_out_path(out: str | os.PathLike) -> Path:
    """Refuse an ``--out`` that exists or cannot be created, before any work."""
    path = Path(out)
    if path.exists() or path.is_symlink():
        raise UserError(f"{path} already exists; certificates are never overwritten: choose another --out")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {parent} is not a writable directory")
    return path


def format_for(fmt: str | None, out: str | os.PathLike | None) -> str:
    """``--format``, else the suffix of ``--out`` (.json, .md, .html), else json."""
    if fmt is None and out is not None:
        fmt = {".md": "md", ".html": "html", ".htm": "html"}.get(Path(out).suffix.lower(), "json")
    fmt = fmt or "json"
    if fmt not in FORMATS:
        raise UserError(f"unknown certificate format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def issue_certificate(ledger: Ledger, request_id: str, fmt: str, out: str | os.PathLike | None = None,
                      ) -> tuple[str, str]:
    """Build, record and (with ``out``) write the certificate; returns (text, content sha256)."""
    fmt = format_for(fmt, out)
    path = None if out is None else check_out_path(out)
    facts = certificate_facts(ledger, request_id)
    sha = content_sha256(facts)
    text = render(facts, sha, fmt)
    with ledger.transaction() as c:
        now = c.execute("SELECT status, batch_id FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        if tuple(now) != ("verified", facts["batch"]["batch_id"]):  # a rollback raced the facts: certify nothing
            raise UserError(f"request {request_id} changed while its certificate was built (now {now[0]}); "
                            f"nothing was issued")
        c.execute("INSERT INTO certificates (request_id, batch_id, version, content_sha256, facts, format, "
                  "issued_at, out) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (request_id, facts["batch"]["batch_id"], facts["models"]["promoted"]["version"], sha,
                   json.dumps(facts, sort_keys=True), fmt, facts["certificate"]["issued_at"],
                   None if path is None else str(path.resolve())))
        Ledger.event(c, "certificate_issued", batch_id=facts["batch"]["batch_id"],
                     version=facts["models"]["promoted"]["version"], request_id=request_id, content_sha256=sha,
                     format=fmt, out=None if path is None else str(path))
        if path is not None:
            _write_new(path, text)
    return text, sha


def write_certificate(ledger: Ledger, request_id: str, fmt: str, out: str | os.PathLike) -> Path:
    """Write ``request_id``'s certificate to ``out`` (a new file) in ``fmt`` (json, md, html); for the demo."""
    issue_certificate(ledger, request_id, fmt, out)
    return Path(out)


def _write_new(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def verify_certificate(ledger: Ledger, file: str | os.PathLike) -> dict[str, Any]:
    """Check a certificate file against this ledger; returns what was checked (UserError on any mismatch)."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no such certificate file: {path}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not an unlearn certificate (not UTF-8 text)") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    try:
        fmt, facts = extract(text)
        declared = (facts.get("certificate") or {}).get("format")
        request_id = facts["request"]["request_id"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} is not an unlearn certificate ({exc})") from None
    if declared != CERTIFICATE_FORMAT:
        raise UserError(f"{path} is not an unlearn certificate of format {CERTIFICATE_FORMAT} (found {declared!r})")
    if facts["certificate"].get("ledger_id") != ledger.ledger_id:
        raise UserError(f"{path} was issued by ledger {facts['certificate'].get('ledger_id')}, not by "
                        f"{ledger.path} (ledger {ledger.ledger_id}): open the issuing ledger with --ledger")
    sha = content_sha256(facts)
    row = ledger.conn.execute("SELECT * FROM certificates WHERE content_sha256 = ?", (sha,)).fetchone()
    if row is None:
        raise UserError(f"{path} does not match any certificate this ledger issued: {_what_changed(ledger, facts)}")
    expected = render(facts, sha, fmt)
    if text != expected:
        raise UserError(f"{path} was edited after it was issued: {_first_difference(text, expected)}")
    request = ledger.get_request(request_id)
    if request is None or request["status"] != "verified" or request["batch_id"] != facts["batch"]["batch_id"]:
        status = "gone" if request is None else request["status"]
        raise UserError(f"{path} is authentic but no longer holds: request {request_id} is now {status} (its "
                        f"model version was rolled back or replaced); issue a new certificate once it is verified "
                        f"again")
    return {"file": str(path), "format": fmt, "request_id": request_id, "content_sha256": sha,
            "certificate_id": row["certificate_id"], "issued_at": row["issued_at"],
            "verdict": facts["verification"].get("verdict"), "evidence": facts["verification"].get("evidence"),
            "version": facts["models"]["promoted"]["version"]}


def _what_changed(ledger: Ledger, facts: dict[str, Any]) -> str:
    """Name the fields where ``facts`` differ from what the ledger recorded for the same issuance."""
    rows = ledger.conn.execute("SELECT facts FROM certificates WHERE request_id = ? AND issued_at = ?",
                               (facts["request"]["request_id"], facts["certificate"].get("issued_at"))).fetchall()
    if not rows:
        return (f"no certificate for request {facts['request']['request_id']} was issued at "
                f"{facts['certificate'].get('issued_at')}")
    diffs = _diff(json.loads(rows[0][0]), facts)
    shown = "; ".join(f"{k}: issued {a!r}, file says {b!r}" for k, a, b in diffs[:5])
    return f"its facts were edited ({len(diffs)} field(s)): {shown}" + (" ..." if len(diffs) > 5 else "")


def _diff(issued: Any, found: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(issued, dict) and isinstance(found, dict):
        return [d for k in sorted(set(issued) | set(found))
                for d in _diff(issued.get(k), found.get(k), f"{prefix}.{k}" if prefix else k)]
    if isinstance(issued, list) and isinstance(found, list) and len(issued) == len(found):
        return [d for i, (a, b) in enumerate(zip(issued, found, strict=True)) for d in _diff(a, b, f"{prefix}[{i}]")]
    return [] if issued == found else [(prefix or "(whole record)", issued, found)]


def _first_difference(text: str, expected: str) -> str:
    got, want = text.split("\n"), expected.split("\n")
    for n, (a, b) in enumerate(zip(got, want, strict=False), start=1):
        if a != b:
            return f"line {n} reads {a[:80]!r}, the issued text reads {b[:80]!r}"
    return f"{len(got)} lines, the issued text has {len(want)}"
