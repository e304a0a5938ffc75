"""Settings from the environment, with the local stack's defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("COLLECTIONS_VAR_DIR", ROOT / "var"))


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    temporal_address: str = field(default_factory=lambda: _env("TEMPORAL_ADDRESS", "localhost:7233"))
    temporal_namespace: str = field(default_factory=lambda: _env("TEMPORAL_NAMESPACE", "default"))
    task_queue: str = field(default_factory=lambda: _env("TEMPORAL_TASK_QUEUE", "collections"))
    ui_port: int = field(default_factory=lambda: int(_env("TEMPORAL_UI_PORT", "8233")))
    max_cached_workflows: int = field(default_factory=lambda: int(_env("WORKER_MAX_CACHED_WORKFLOWS", "10000")))
    max_concurrent_activities: int = field(default_factory=lambda: int(_env("WORKER_MAX_CONCURRENT_ACTIVITIES", "200")))
    max_concurrent_workflow_tasks: int = field(default_factory=lambda: int(_env("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "100")))
    metrics_address: str = field(default_factory=lambda: os.environ.get("WORKER_METRICS_ADDRESS", "127.0.0.1:9464"))
    log_format: str = field(default_factory=lambda: _env("LOG_FORMAT", "auto"))
    log_level: str = field(default_factory=lambda: _env("LOG_LEVEL", "info"))


def settings() -> Settings:
    return Settings()
