"""The text pipeline of the course notes: tokenize → numericalize → embed.

:func:`tokenize` splits a string into lower-case tokens, :class:`Vocab` maps tokens to integer ids
and back, and :func:`pad` packs id lists of different lengths into one ``int64`` array, ready to
be fed to an int var that indexes an embedding table (``E[X]`` with ``sg.getitem``).

Tokens
------
* a **word** is a run of letters and digits, with apostrophes inside it kept (``don't``,
  ``o'clock``); the typographic apostrophe ’ is written as ' (``don’t`` → ``don't``);
* a **number** is a run of digits with ``.`` or ``,`` between digit groups kept
  (``3.14``, ``1,000``); a number glued to letters is one word (``3rd``, ``mp3``);
* every other visible character is a token of its own, punctuation included
  (``...`` → ``.``, ``.``, ``.``; an apostrophe that is not inside a word is punctuation);
* text is lower-cased (``str.lower``) and white space only separates tokens.

Examples
--------
>>> import symgrad as sg
>>> docs = [sg.text.tokenize(s) for s in ["Don't stop!", "Stop the music.", "The end"]]
>>> docs[0]
["don't", 'stop', '!']
>>> vocab = sg.text.Vocab.build(docs)
>>> vocab.itos[:5]
('<pad>', '<unk>', 'stop', 'the', '!')
>>> ids = [vocab.encode(d) for d in docs]
>>> ids
[[6, 2, 4], [2, 3, 8, 5], [3, 7]]
>>> sg.text.pad(ids, value=vocab.pad_id)
array([[6, 2, 4, 0],
       [2, 3, 8, 5],
       [3, 7, 0, 0]])
>>> vocab.decode([2, 3, 7, 0], skip_pad=True)
['stop', 'the', 'end']
"""
from __future__ import annotations

import operator
import re
from collections import Counter
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import TextError

__all__ = ["tokenize", "Vocab", "pad", "PAD", "UNK"]

#: the special token that fills short sequences (its id is :attr:`Vocab.pad_id`)
PAD = "<pad>"
#: the special token that stands for every token not in the vocabulary (:attr:`Vocab.unk_id`)
UNK = "<unk>"

_ALNUM = r"[^\W_]"  # a letter or a digit (any script)
_TOKEN = re.compile(rf"\d+(?:[.,]\d+)*(?!{_ALNUM})|{_ALNUM}+(?:'{_ALNUM}+)*|\S")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def tokenize(text: str) -> list[str]:
    """Lower-case word, number and punctuation tokens of ``text`` (see the module's rules).

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.text.tokenize("Don't stop!")
    ["don't", 'stop', '!']
    >>> sg.text.tokenize("It costs $3.50, not 1,000... (ok?)")
    ['it', 'costs', '$', '3.50', ',', 'not', '1,000', '.', '.', '.', '(', 'ok', '?', ')']
    """
    if not isinstance(text, str):
        raise TextError(f"tokenize: text must be a str, got {type(text).__name__} {_short(text)}")
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def _token_list(op: str, tokens: Any, what: str = "tokens") -> list[str]:
    """``tokens`` as a list of strings; a bare string (a common slip: its characters would be the
    tokens) and non-string entries raise."""
    if isinstance(tokens, str):
        raise TextError(f"{op}: {what} must be a list of token strings, got the string {_short(tokens)}; "
                        f"split it with sg.text.tokenize first")
    try:
        out = list(tokens)
    except TypeError:
        raise TextError(f"{op}: {what} must be a list of token strings, got {type(tokens).__name__}") from None
    for i, token in enumerate(out):
        if not isinstance(token, str):
            raise TextError(f"{op}: {what}[{i}] must be a str, got {type(token).__name__} {_short(token)}")
    return out


def _as_int(op: str, what: str, value: Any, low: int | None = 0) -> int:
    """``value`` as a Python int (NumPy integers too, not bools or floats), at least ``low``."""
    if isinstance(value, (bool, np.bool_)):
        raise TextError(f"{op}: {what} must be an int, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TextError(f"{op}: {what} must be an int, got {type(value).__name__} {_short(value)}") from None
    if low is not None and number < low:
        raise TextError(f"{op}: {what} must be ≥ {low}, got {number}")
    if abs(number) >= 2 ** 63:
        raise TextError(f"{op}: {what} = {number} does not fit an int64")
    return int(number)


class Vocab:
    """A fixed vocabulary: token ↔ id, with the special tokens first.

    Make one with :meth:`build` from tokenized texts, or directly from its ordered tokens
    (``Vocab(["<pad>", "<unk>", "a", "b"])``).  The roles of the specials go by name: the token
    ``"<pad>"`` (:data:`PAD`) is the padding token and ``"<unk>"`` (:data:`UNK`) stands for
    unknown tokens; a vocabulary without ``"<unk>"`` raises on unknown tokens instead.

    Examples
    --------
    >>> import symgrad as sg
    >>> v = sg.text.Vocab.build([["b", "a", "b"], ["c", "a", "b"]], min_freq=2)
    >>> v.itos, len(v), v["b"], v["zebra"] == v.unk_id
    (('<pad>', '<unk>', 'b', 'a'), 4, 2, True)
    >>> v.encode(["a", "c"]), v.decode([3, 1])
    ([3, 1], ['a', '<unk>'])
    """

    def __init__(self, tokens: Iterable[str], specials: Sequence[str] = (PAD, UNK)) -> None:
        specials = _token_list("Vocab", specials, "specials")
        itos = _token_list("Vocab", tokens)
        stoi: dict[str, int] = {}
        for i, token in enumerate(itos):
            if token == "":
                raise TextError(f"Vocab: tokens[{i}] is the empty string")
            if token in stoi:
                raise TextError(f"Vocab: the token {token!r} appears twice (ids {stoi[token]} and {i})")
            stoi[token] = i
        for token in specials:
            if token not in stoi:
                raise TextError(f"Vocab: the special {token!r} is not among the tokens")
        self._itos = tuple(itos)
        self._stoi = MappingProxyType(stoi)
        self._specials = tuple(specials)
        self._counts: Mapping[str, int] = MappingProxyType({})

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1,
              specials: Sequence[str] = (PAD, UNK), max_size: int | None = None) -> "Vocab":
        """The vocabulary of ``token_lists`` (one token list per text).

        Ids: the ``specials`` first, in the order given (by default ``<pad>`` = 0, ``<unk>`` = 1),
        then every other token seen at least ``min_freq`` times, the most frequent first and
        tokens of equal count in alphabetical (code point) order, so the same texts always give
        the same ids.  ``max_size`` caps ``len(vocab)``, specials included; the rarest tokens are
        left out (and encode to ``<unk>``).

        Examples
        --------
        >>> import symgrad as sg
        >>> v = sg.text.Vocab.build([["to", "be", "or", "not", "to", "be"]], max_size=4)
        >>> v.itos, v.counts["to"]
        (('<pad>', '<unk>', 'be', 'to'), 2)
        """
        min_freq = _as_int("Vocab.build", "min_freq", min_freq, low=0)
        specials = _token_list("Vocab.build", specials, "specials")
        for i, token in enumerate(specials):
            if token == "" or token in specials[:i]:
                raise TextError(f"Vocab.build: specials must be distinct non-empty strings, got {specials!r}")
        if max_size is not None:
            max_size = _as_int("Vocab.build", "max_size", max_size, low=len(specials))
        if isinstance(token_lists, str):
            raise TextError("Vocab.build: token_lists must be a list of token lists, got a string; "
                            "use [sg.text.tokenize(text) for text in texts]")
        try:
            lists = list(token_lists)
        except TypeError:
            raise TextError(f"Vocab.build: token_lists must be a list of token lists, "
                            f"got {type(token_lists).__name__}") from None
        counts: Counter[str] = Counter()
        for i, tokens in enumerate(lists):
            if isinstance(tokens, str):
                raise TextError(f"Vocab.build: token_lists[{i}] is the string {_short(tokens)}, not a list of "
                                f"tokens; pass a list of token lists ([tokens], not tokens)")
            counts.update(_token_list("Vocab.build", tokens, f"token_lists[{i}]"))
        if "" in counts:
            raise TextError("Vocab.build: the empty string is not a token")
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size - len(specials)]
        vocab = cls(list(specials) + kept, specials=specials)
        vocab._counts = MappingProxyType(dict(counts))
        return vocab

    # ------------------------------------------------------------ lookups
    @property
    def itos(self) -> tuple[str, ...]:
        """The tokens in id order (id → string)."""
        return self._itos

    @property
    def stoi(self) -> Mapping[str, int]:
        """The ids of the tokens (string → id), read-only."""
        return self._stoi

    @property
    def specials(self) -> tuple[str, ...]:
        return self._specials

    @property
    def counts(self) -> Mapping[str, int]:
        """How often :meth:`build` saw each token (all tokens, kept or not); empty otherwise."""
        return self._counts

    def _special_id(self, token: str, role: str) -> int:
        if token not in self._stoi:
            raise TextError(f"Vocab: no {role} token: {token!r} is not in this vocabulary "
                            f"(specials {self._specials!r})")
        return self._stoi[token]

    @property
    def pad_id(self) -> int:
        """The id of ``<pad>``; raises TextError when the vocabulary has none."""
        return self._special_id(PAD, "padding")

    @property
    def unk_id(self) -> int:
        """The id of ``<unk>``; raises TextError when the vocabulary has none."""
        return self._special_id(UNK, "unknown-token")

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __getitem__(self, token: str) -> int:
        """The id of ``token``; an unknown token gives ``unk_id`` (TextError without ``<unk>``)."""
        if not isinstance(token, str):
            raise TextError(f"Vocab: tokens are strings, got {type(token).__name__} {_short(token)} "
                            f"(decode ids with vocab.decode or vocab.itos)")
        found = self._stoi.get(token)
        if found is not None:
            return found
        if UNK not in self._stoi:
            raise TextError(f"Vocab: the token {token!r} is not in the vocabulary and it has no {UNK!r}")
        return self._stoi[UNK]

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={self._specials!r})"

    # ------------------------------------------------------------ encode / decode
    def encode(self, tokens: Sequence[str]) -> list[int]:
        """The ids of ``tokens`` (unknown tokens → ``unk_id``).

        Examples
        --------
        >>> import symgrad as sg
        >>> v = sg.text.Vocab(["<pad>", "<unk>", "hello"])
        >>> v.encode(sg.text.tokenize("Hello, hello"))
        [2, 1, 2]
        """
        return [self[token] for token in _token_list("Vocab.encode", tokens)]

    def decode(self, ids: Iterable[int], skip_pad: bool = False) -> list[str]:
        """The tokens of ``ids`` (a list, or a 1-D int array such as a row of :func:`pad`'s result);
        ``skip_pad=True`` leaves out the padding tokens.

        Examples
        --------
        >>> import symgrad as sg
        >>> sg.text.Vocab(["<pad>", "<unk>", "hi"]).decode([2, 2, 0])
        ['hi', 'hi', '<pad>']
        """
        if isinstance(ids, np.ndarray) and ids.ndim != 1:
            raise TextError(f"Vocab.decode: ids must be one list of ids, got an array of shape {ids.shape}")
        if isinstance(ids, (str, bytes)):
            raise TextError(f"Vocab.decode: ids must be a list of ints, got {type(ids).__name__} {_short(ids)}")
        try:
            ids = list(ids)
        except TypeError:
            raise TextError(f"Vocab.decode: ids must be a list of ints, got {type(ids).__name__}") from None
        pad_id = self._stoi.get(PAD) if skip_pad else None
        out = []
        for i, value in enumerate(ids):
            k = _as_int("Vocab.decode", f"ids[{i}]", value, low=None)
            if not 0 <= k < len(self._itos):
                raise TextError(f"Vocab.decode: ids[{i}] = {k} is outside the vocabulary [0, {len(self._itos)})")
            if k != pad_id:
                out.append(self._itos[k])
        return out


def pad(id_lists: Iterable[Sequence[int]], length: int | None = None, value: int = 0) -> np.ndarray:
    """Id lists as one ``int64`` array of shape (number of lists, ``length``).

    Each list is padded on the right with ``value`` (give ``vocab.pad_id``; 0 is the default
    ``<pad>`` id), or cut to its first ``length`` ids when longer.  ``length=None`` is the length
    of the longest list.  Ids must be ints ≥ 0; ``value`` may be any int.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.text.pad([[5, 3], [7], [1, 2, 3, 4]], length=3, value=0)
    array([[5, 3, 0],
           [7, 0, 0],
           [1, 2, 3]])
    """
    value = _as_int("pad", "value", value, low=None)
    if length is not None:
        length = _as_int("pad", "length", length, low=0)
    if isinstance(id_lists, (str, bytes)):
        raise TextError(f"pad: id_lists must be a list of id lists, got {type(id_lists).__name__}")
    try:
        lists = list(id_lists)
    except TypeError:
        raise TextError(f"pad: id_lists must be a list of id lists, got {type(id_lists).__name__}") from None
    rows = []
    for i, ids in enumerate(lists):
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TextError(f"pad: id_lists[{i}] must be a list of ids, got {type(ids).__name__} {_short(ids)}")
        rows.append([_as_int("pad", f"id_lists[{i}][{j}]", v) for j, v in enumerate(ids)])
    width = max((len(r) for r in rows), default=0) if length is None else length
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[:width]
        out[i, :len(row)] = row
    return out
