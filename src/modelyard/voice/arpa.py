"""A domain n-gram language model in ARPA format, for the recognizer to decode with.

Interpolated absolute discounting (Ney, Essen & Kneser 1994): for a history ``h`` seen ``c(h)``
times, followed by ``T(h)`` distinct words,

    p(w | h) = max(c(h, w) - D, 0) / c(h) + gamma(h) * p(w | h'),   gamma(h) = D * T(h) / c(h)

with ``D = n1 / (n1 + 2 n2)`` per order (n1, n2: the n-grams seen once and twice) and the
unigrams interpolated with a uniform distribution over the vocabulary, so every word of it has a
probability. An interpolated model is written in ARPA's backoff form exactly: a seen n-gram's
entry is its interpolated probability and the backoff weight of ``h`` is ``gamma(h)``, because
the lower order already holds every word. pocketsphinx reads the file (``NGramModel``).

Why not a toolkit: the ``kenlm`` wheel on PyPI only queries models (its ``lmplz`` estimator is a
C++ program it does not ship) and IRSTLM is a Debian-only set of shell scripts; the models here
are small (the intent model's training texts, ~15k sentences), and this writer is tested by
reading its file back with pocketsphinx and checking that every history's distribution sums to 1.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

__all__ = ["write_arpa", "BOS", "EOS", "UNK"]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def _discount(counts: Counter) -> float:
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


def write_arpa(sentences: Iterable[Sequence[str]], *, order: int = 3, vocabulary: Iterable[str] = ()) -> str:
    """The ARPA text of an ``order``-gram model of ``sentences`` (lists of words); words of
    ``vocabulary`` that the sentences lack still get a unigram probability."""
    if order < 1:
        raise ValueError(f"order must be at least 1, received {order}")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]  # counts[n][ngram tuple]
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                gram = tuple(padded[i : i + n])
                if gram != (BOS,):
                    counts[n][gram] += 1
    vocab = sorted({g[0] for g in counts[1]} | set(vocabulary) | {UNK} - {BOS})
    total = sum(counts[1].values())
    if total == 0:
        raise ValueError("no words to train on")
    # probs[n][gram]: the interpolated p(gram[-1] | gram[:-1]); gammas[n][history of length n]
    probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    gammas: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    d1 = _discount(counts[1])
    seen = len(counts[1])
    uniform = d1 * seen / total / len(vocab)
    for w in vocab:
        probs[1][(w,)] = max(counts[1][(w,)] - d1, 0.0) / total + uniform
    for n in range(2, order + 1):
        d = _discount(counts[n])
        history_count: Counter = Counter()
        followers: defaultdict[tuple[str, ...], int] = defaultdict(int)
        for gram, c in counts[n].items():
            history_count[gram[:-1]] += c
            followers[gram[:-1]] += 1
        for h, c in history_count.items():
            gammas[n - 1][h] = d * followers[h] / c
        for gram, c in counts[n].items():
            h = gram[:-1]
            probs[n][gram] = (c - d) / history_count[h] + gammas[n - 1][h] * _lower(probs, gammas, gram[1:])
    lines = ["\\data\\"]
    entries = [[(BOS,), *sorted(probs[1])]] + [sorted(probs[n]) for n in range(2, order + 1)]
    for n, grams in enumerate(entries, start=1):
        lines.append(f"ngram {n}={len(grams)}")
    for n, grams in enumerate(entries, start=1):
        lines += ["", f"\\{n}-grams:"]
        for gram in grams:
            logp = -99.0 if gram == (BOS,) else math.log10(probs[n][gram])
            line = f"{logp:.6f}\t{' '.join(gram)}"
            if n < order and gram[-1] != EOS:
                gamma = gammas[n].get(gram)
                line += f"\t{math.log10(gamma) if gamma else 0.0:.6f}"
            lines.append(line)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _lower(probs: list[dict], gammas: list[dict], gram: tuple[str, ...]) -> float:
    """The interpolated probability of ``gram``'s last word after its history, backing off as ARPA does."""
    n = len(gram)
    if n == 1:
        return probs[1].get(gram, probs[1][(UNK,)])
    if gram in probs[n]:
        return probs[n][gram]
    return gammas[n - 1].get(gram[:-1], 1.0) * _lower(probs, gammas, gram[1:])
