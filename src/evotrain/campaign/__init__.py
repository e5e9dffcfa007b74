"""A campaign: init (snapshot + constitution), the round loop, resume, status and audit."""
