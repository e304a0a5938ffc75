"""Orchestration only: deterministic workflow code. Import nothing heavy here."""
