"""sg.text: tokenize → Vocab (numericalize) → pad, and padded ids feeding an embedding lookup."""
from __future__ import annotations

import random

import numpy as np
import pytest

import symgrad as sg
from symgrad.text import PAD, UNK, Vocab, pad, tokenize

TEXTS = ["Don't stop the music!", "The music stops.", "Stop, don't go..."]


# ------------------------------------------------------------ tokenize
@pytest.mark.parametrize("text,tokens", [
    ("Don't stop!", ["don't", "stop", "!"]),
    ("Hello, World.", ["hello", ",", "world", "."]),
    ("don\u2019t O'Clock", ["don't", "o'clock"]),
    ("'quoted' dogs'", ["'", "quoted", "'", "dogs", "'"]),
    ("rock 'n' roll", ["rock", "'", "n", "'", "roll"]),
    ("pi is 3.14, a 1,000 x; 3rd mp3 2.", ["pi", "is", "3.14", ",", "a", "1,000", "x", ";", "3rd", "mp3", "2", "."]),
    ("$5 e-mail U.S.A.", ["$", "5", "e", "-", "mail", "u", ".", "s", ".", "a", "."]),
    ("Café ÜBER\tnaïve\nsnake_case", ["café", "über", "naïve", "snake", "_", "case"]),
    ("Wait...", ["wait", ".", ".", "."]),
    ("", []),
    ("  \n\t ", []),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens
    assert sg.text.tokenize(text) == tokens


@pytest.mark.parametrize("bad", [None, b"bytes", ["a", "b"], 3])
def test_tokenize_refuses_what_is_not_a_string(bad):
    with pytest.raises(sg.TextError, match="tokenize: text must be a str"):
        tokenize(bad)
    assert issubclass(sg.TextError, sg.SymgradError) and issubclass(sg.TextError, ValueError)


# ------------------------------------------------------------ Vocab
def _docs():
    return [tokenize(t) for t in TEXTS]


def test_vocab_build_orders_by_count_then_alphabet():
    v = Vocab.build(_docs())
    # counts: don't 2, music 2, stop 2, the 2, . 4, ! 1, , 1, go 1, stops 1
    assert v.itos == ("<pad>", "<unk>", ".", "don't", "music", "stop", "the", "!", ",", "go", "stops")
    assert len(v) == 11 and v.pad_id == 0 and v.unk_id == 1
    assert v.stoi["music"] == 4 and v["the"] == 6 and v["never-seen"] == 1
    assert v.counts["."] == 4 and v.counts["go"] == 1
    assert "stop" in v and "jazz" not in v
    assert v.specials == (PAD, UNK)
    assert repr(v) == "Vocab(size=11, specials=('<pad>', '<unk>'))"


def test_vocab_build_is_deterministic_under_shuffles():
    docs = _docs()
    want = Vocab.build(docs).itos
    rng = random.Random(0)
    for _ in range(5):
        shuffled = [rng.sample(d, len(d)) for d in rng.sample(docs, len(docs))]
        assert Vocab.build(shuffled).itos == want


def test_vocab_min_freq_and_max_size():
    docs = _docs()
    assert Vocab.build(docs, min_freq=2).itos == ("<pad>", "<unk>", ".", "don't", "music", "stop", "the")
    assert Vocab.build(docs, min_freq=5).itos == ("<pad>", "<unk>")
    assert Vocab.build(docs, min_freq=0).itos == Vocab.build(docs, min_freq=1).itos
    assert Vocab.build(docs, max_size=4).itos == ("<pad>", "<unk>", ".", "don't")
    assert Vocab.build(docs, max_size=2).itos == ("<pad>", "<unk>")
    small = Vocab.build(docs, max_size=4)
    assert small.encode(["don't", "music"]) == [3, 1]


def test_vocab_custom_specials_and_specials_in_the_texts():
    v = Vocab.build([["<pad>", "a", "b", "a"], ["<bos>", "b", "b"]], specials=("<unk>", "<pad>", "<bos>"))
    assert v.itos == ("<unk>", "<pad>", "<bos>", "b", "a")
    assert (v.unk_id, v.pad_id) == (0, 1)
    assert v.encode(["<bos>", "a", "z"]) == [2, 4, 0]
    no_unk = Vocab.build([["a", "b"]], specials=("<pad>",))
    assert no_unk.itos == ("<pad>", "a", "b")
    with pytest.raises(sg.TextError, match="'zebra' is not in the vocabulary and it has no '<unk>'"):
        no_unk.encode(["a", "zebra"])
    with pytest.raises(sg.TextError, match="no unknown-token token"):
        no_unk.unk_id
    with pytest.raises(sg.TextError, match="no padding token"):
        Vocab.build([["a"]], specials=("<unk>",)).pad_id
    assert Vocab.build([["a"]], specials=()).itos == ("a",)


def test_vocab_encode_decode_round_trip():
    v = Vocab.build(_docs())
    tokens = tokenize("Stop the music, don't stop!")
    ids = v.encode(tokens)
    assert ids == [5, 6, 4, 8, 3, 5, 7]
    assert v.decode(ids) == tokens
    assert v.decode(np.array(ids + [0, 0])) == tokens + ["<pad>", "<pad>"]
    assert v.decode(np.array(ids + [0, 0]), skip_pad=True) == tokens
    assert v.encode(tokenize("Jazz stops")) == [1, 10]
    assert v.decode([1, 10]) == ["<unk>", "stops"]
    assert v.encode([]) == [] and v.decode([]) == []


def test_vocab_direct_construction():
    v = Vocab(["<pad>", "<unk>", "x", "y"])
    assert v.encode(["y", "x", "q"]) == [3, 2, 1] and v.counts == {}
    with pytest.raises(sg.TextError, match="'x' appears twice"):
        Vocab(["<pad>", "<unk>", "x", "x"])
    with pytest.raises(sg.TextError, match="the special '<unk>' is not among the tokens"):
        Vocab(["<pad>", "x"])
    with pytest.raises(sg.TextError, match="empty string"):
        Vocab(["<pad>", "<unk>", ""])


def test_vocab_mappings_are_read_only():
    v = Vocab.build(_docs())
    with pytest.raises(TypeError):
        v.stoi["new"] = 3
    with pytest.raises(TypeError):
        v.counts["new"] = 3
    with pytest.raises(AttributeError):
        v.itos = ()


@pytest.mark.parametrize("kwargs,match", [
    ({"min_freq": -1}, "min_freq must be ≥ 0, got -1"),
    ({"min_freq": 1.5}, "min_freq must be an int"),
    ({"min_freq": True}, "min_freq must be an int, got the bool"),
    ({"max_size": 1}, "max_size must be ≥ 2, got 1"),
    ({"max_size": "10"}, "max_size must be an int"),
    ({"specials": ("<pad>", "<pad>")}, "specials must be distinct non-empty strings"),
    ({"specials": ("<pad>", "")}, "specials must be distinct non-empty strings"),
    ({"specials": ("<pad>", 1)}, r"specials\[1\] must be a str"),
    ({"specials": "<pad>"}, "specials must be a list of token strings, got the string"),
])
def test_vocab_build_bad_settings(kwargs, match):
    with pytest.raises(sg.TextError, match=match):
        Vocab.build(_docs(), **kwargs)


@pytest.mark.parametrize("token_lists,match", [
    ("some text", "token_lists must be a list of token lists, got a string"),
    (["some", "text"], r"token_lists\[0\] is the string 'some', not a list of tokens"),
    ([["a", 3]], r"token_lists\[0\]\[1\] must be a str, got int"),
    ([["a", ""]], "the empty string is not a token"),
    (42, "token_lists must be a list of token lists, got int"),
    ([["a"], None], r"token_lists\[1\] must be a list of token strings, got NoneType"),
])
def test_vocab_build_bad_token_lists(token_lists, match):
    with pytest.raises(sg.TextError, match=match):
        Vocab.build(token_lists)


def test_vocab_lookup_errors():
    v = Vocab.build(_docs())
    with pytest.raises(sg.TextError, match="got the string 'stop the'; split it with sg.text.tokenize"):
        v.encode("stop the")
    with pytest.raises(sg.TextError, match=r"tokens\[1\] must be a str, got int"):
        v.encode(["stop", 3])
    with pytest.raises(sg.TextError, match="tokens are strings, got int"):
        v[3]
    with pytest.raises(sg.TextError, match=r"ids\[1\] = 11 is outside the vocabulary \[0, 11\)"):
        v.decode([2, 11])
    with pytest.raises(sg.TextError, match=r"ids\[0\] = -1 is outside"):
        v.decode([-1])
    with pytest.raises(sg.TextError, match=r"ids\[0\] must be an int, got float"):
        v.decode([2.0])
    with pytest.raises(sg.TextError, match=r"array of shape \(2, 2\)"):
        v.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(sg.TextError, match="ids must be a list of ints, got str"):
        v.decode("2 3")


# ------------------------------------------------------------ pad
def test_pad_values_and_dtype():
    out = pad([[5, 3], [7], [1, 2, 3, 4]])
    assert out.dtype == np.int64 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, [[5, 3, 0, 0], [7, 0, 0, 0], [1, 2, 3, 4]])
    np.testing.assert_array_equal(pad([[5, 3], [7], [1, 2, 3, 4]], length=3, value=9), [[5, 3, 9], [7, 9, 9], [1, 2, 3]])
    np.testing.assert_array_equal(pad([[5, 3]], length=0), np.zeros((1, 0), dtype=np.int64))
    assert pad([]).shape == (0, 0) and pad([[], []]).shape == (2, 0)
    np.testing.assert_array_equal(pad([np.array([4, 2]), (np.int32(1),)], value=-1), [[4, 2], [1, -1]])
    assert pad([[2**62]])[0, 0] == 2**62


@pytest.mark.parametrize("args,kwargs,match", [
    (([[1, -2]],), {}, r"id_lists\[0\]\[1\] must be ≥ 0, got -2"),
    (([[1, 2.0]],), {}, r"id_lists\[0\]\[1\] must be an int, got float"),
    (([[True]],), {}, r"id_lists\[0\]\[0\] must be an int, got the bool"),
    ((["12"],), {}, r"id_lists\[0\] must be a list of ids, got str"),
    (([3],), {}, r"id_lists\[0\] must be a list of ids, got int"),
    (("12",), {}, "id_lists must be a list of id lists, got str"),
    (([[1]],), {"length": -1}, "length must be ≥ 0, got -1"),
    (([[1]],), {"length": 2.0}, "length must be an int"),
    (([[1]],), {"value": 0.5}, "value must be an int"),
    (([[2**64]],), {}, "does not fit an int64"),
])
def test_pad_bad_input(args, kwargs, match):
    with pytest.raises(sg.TextError, match=match):
        pad(*args, **kwargs)


# ------------------------------------------------------------ end to end: ids → embedding
def test_padded_ids_feed_an_embedding_lookup_and_its_gradient_hits_only_used_rows():
    docs = [tokenize(t) for t in TEXTS]
    vocab = Vocab.build(docs)
    ids = pad([vocab.encode(d) for d in docs], value=vocab.pad_id)
    assert ids.shape == (3, 7)
    dim = 4
    table = np.random.default_rng(0).normal(size=(len(vocab), dim))
    E = sg.param("E", table)
    X = sg.var("X", shape=("batch", "length"), dtype="int")
    emb = sg.getitem(E, X)
    c = np.array([1.0, -2.0, 0.5, 3.0])
    L = sg.sum(emb * sg.const(c))
    dE = sg.grad(L, E)
    got_emb, got_L, got_dE = sg.evaluate([emb, L, dE], {X: ids})
    np.testing.assert_array_equal(got_emb, table[ids])
    assert float(got_L) == pytest.approx(float(np.sum(table[ids] @ c)), rel=1e-14)
    counts = np.bincount(ids.ravel(), minlength=len(vocab))
    np.testing.assert_allclose(got_dE, counts[:, None] * c[None, :], rtol=0, atol=0)
    assert counts[vocab.unk_id] == 0 and np.all(got_dE[vocab.unk_id] == 0)  # unused rows get no gradient
    f = sg.compile([emb, L, dE], inputs=[X])
    for a, b in zip(f(ids), (got_emb, got_L, got_dE)):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)
    # another batch of another length goes through the same compiled function
    more = pad([vocab.encode(tokenize("the end"))], value=vocab.pad_id)
    np.testing.assert_array_equal(f(more)[0], table[more])


def test_a_bag_of_embeddings_classifier_trains_on_encoded_text():
    texts = ["good fun film", "great fun", "good great acting", "bad dull film", "dull boring", "bad acting"]
    labels = np.array([1, 1, 1, 0, 0, 0])
    docs = [tokenize(t) for t in texts]
    vocab = Vocab.build(docs)
    ids = pad([vocab.encode(d) for d in docs], value=vocab.pad_id)
    mask = (ids != vocab.pad_id).astype(float)
    E = sg.param("E", np.random.default_rng(1).normal(size=(len(vocab), 3)) * 0.1)
    W = sg.param("W", np.zeros((3, 2)))
    X = sg.var("X", shape=("batch", "length"), dtype="int")
    M = sg.var("M", shape=("batch", "length"))
    y = sg.var("y", shape=("batch",), dtype="int")
    pooled = sg.sum(sg.getitem(E, X) * sg.expand_dims(M, -1), axis=1) / sg.sum(M, axis=1, keepdims=True)
    step = sg.compile_step(sg.losses.cross_entropy(pooled @ W, y), sg.optim.Adam(lr=0.1), inputs=[X, M, y])
    losses = [float(step(ids, mask, labels)) for _ in range(80)]
    assert losses[-1] < 0.1 * losses[0]
    test = pad([vocab.encode(tokenize("Great fun!")), vocab.encode(tokenize("Dull, boring."))], value=vocab.pad_id)
    tmask = (test != vocab.pad_id).astype(float)
    scores = sg.evaluate(pooled @ W, {X: test, M: tmask})
    assert list(np.argmax(scores, axis=1)) == [1, 0]
