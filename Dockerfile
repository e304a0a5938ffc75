# The project image (production sketch; see docker-compose.yml): the workers (N replicas on one task
# queue), the payments and case API, the codec server, the sandbox gateway and the migration all run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json

WORKDIR /app
RUN useradd --create-home --uid 10001 app

# The project (.dockerignore keeps out .venv, var/, tests and caches); `pip install .` brings the
# pinned dependencies, and the code runs from /app.
COPY . .
RUN pip install . && rm -rf build *.egg-info \
    && python -m compileall -q /app  # workflow modules are compiled once, not per cached case

USER app
# The worker drains in-flight tasks on SIGTERM; compose gives it stop_grace_period to do so.
STOPSIGNAL SIGTERM
CMD ["python", "worker.py"]
