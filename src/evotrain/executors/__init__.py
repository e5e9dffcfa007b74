"""Executors run one step's command with resources: local processes now, cluster engines later."""
