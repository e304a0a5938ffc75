"""The development stack: the local Temporal dev server, worker, API, gateway and codec server as one
supervised group, and the demo portfolio."""
