"""The rolling search policy, the frozen constitution it is checked against, and the meta agents that write it."""
