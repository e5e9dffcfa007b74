"""Candidate sandboxes: per-round forks of the substrate snapshot with the standing recipe applied."""
