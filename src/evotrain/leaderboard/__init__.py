"""A leaderboard server: hidden labels held by a separate process, scored submissions, a budget per campaign.

Run it with `evotrain leaderboard serve`; campaigns reach it through `evotrain.external.leaderboard`.
See docs/leaderboard.md.
"""
