"""A trial: one candidate's worker edit, steps run through an executor, and the manifest the harness writes."""
