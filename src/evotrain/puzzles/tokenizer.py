"""The puzzles tokenizer, built offline with ``tokenizers`` when the base model is trained (base.py).

One token per printable ASCII character plus one token per word of the prompt templates, with or without a
leading space, so prose is short while every payload character (bits, cipher letters, digits, symbols) stays its
own token. Nothing is downloaded. The substrate only reads the result (``model/base/tokenizer.json``).
"""

from __future__ import annotations

import re

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from evotrain.puzzles.generators import TEMPLATES
from evotrain.puzzles.lm import SPECIALS

# Words the traces and answer format use besides the template prose.
EXTRA_WORDS = (
    "rule not reverse rotate shift left right xor and or swap nibbles majority choice then factor means "
    "add subtract concatenate reversed all interleave boxed Answer answer Final"
).split()
_PIECES = r" ?[A-Za-z]+|[^A-Za-z]"


def template_words() -> list[str]:
    text = " ".join(" ".join(t) for templates in TEMPLATES.values() for t in templates)
    text += " In Alice's Wonderland " + " ".join(EXTRA_WORDS)
    words = {w for w in re.findall(r"[A-Za-z]+", text) if not w.isupper()}
    return sorted(words)


def build_tokenizer() -> Tokenizer:
    """A deterministic BPE tokenizer: ASCII characters plus one merged token per template word."""
    vocab: dict[str, int] = {s: i for i, s in enumerate(SPECIALS)}
    for code in [10, *range(32, 127)]:
        vocab.setdefault(chr(code), len(vocab))
    for word in template_words():
        for piece in (word, " " + word):
            vocab.setdefault(piece, len(vocab))
    # No merges: a piece in the vocabulary is one token (ignore_merges), anything else is spelled out.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECES), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIALS))
    return tok
