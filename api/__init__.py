"""The payments and case API for the bank's systems: `python -m api` (see api/server.py)."""
