"""Experiment trackers a campaign can be logged to (MLflow), read from its files."""
