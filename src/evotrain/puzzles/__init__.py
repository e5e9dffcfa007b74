"""The embedded default substrate: Wonderland reasoning puzzles on a small causal LM, post-trained on CPU."""
