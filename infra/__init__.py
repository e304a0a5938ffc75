"""Configuration, logging and connections shared by the worker, the starter and the stack."""
