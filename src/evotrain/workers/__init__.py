"""Workers: one protocol, several backends (the offline mutator here; coding agents later)."""
