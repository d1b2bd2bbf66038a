"""The fence: every use of a library's private attributes, internal file names or undocumented environment
variables lives here, one module per library, each with a contract test (tests/test_fenced.py) that fails with a
clear message when an installed version changes what it relies on. Nothing outside this package may touch them."""
