"""The application layer: the use cases the CLI (starter.py), the API (api/) and the console share."""
