"""`python -m evotrain.leaderboard ...`: the operator CLI without the rest of evotrain's command line."""

from evotrain.leaderboard.cli import leaderboard_app

leaderboard_app()
