"""Every side effect of a case. Contracts (pure models) are in activities.contracts."""
