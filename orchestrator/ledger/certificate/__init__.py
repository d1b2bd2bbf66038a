"""Per-request deletion certificates (``unlearn requests certificate``): :mod:`.facts` gathers what the ledger
holds about a request and hashes it, :mod:`.render` writes the json / md / html forms, :mod:`.figure` the one
inline SVG figure, :mod:`.files` issues (records the hash) and verifies them. See docs/ledger.md."""
