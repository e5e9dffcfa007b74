"""The records: every file format of a campaign, below every stage and importing none."""
