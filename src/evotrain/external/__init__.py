"""External targets: the authoritative score (a command, a leaderboard, Kaggle)."""
