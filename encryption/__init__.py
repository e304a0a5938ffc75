"""Encryption of Temporal payloads: the AES-GCM payload codec and the codec server the Web UI and CLI decrypt through."""
