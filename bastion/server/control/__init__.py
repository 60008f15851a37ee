"""The control plane under `/api/v1`: health, status, isolation, config, metrics, events."""
