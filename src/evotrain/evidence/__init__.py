"""Round evidence: the collector's five-section record of what a round showed."""
