"""The gateway's OpenAI layer as pure functions: the field policy, logprobs aligned with the
derived text (real tiny tokenizer), the answer shapes, the key file and its flags."""

from __future__ import annotations

import argparse
import random

import pytest

from protocol import ProtocolError, TokenLogprob
from subnet.config import ConfigError
from subnet.validator import openai_format as oai
from subnet.validator.apikeys import ApiKeys, KeyFileError, default_label, parse_keys
from subnet.validator.config import add_validator_args, validator_config_from_args
from subnet.validator.oai_logprobs import Logprobs, TokenInfo
from subnet.validator.text import TextStream

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
TEXT = {"model": "auto", "prompt": "1 +"}


@pytest.mark.parametrize(
    "chat, extra, param",
    [
        (True, {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        (True, {"tool_choice": "auto"}, "tool_choice"),
        (True, {"functions": [{"name": "f"}]}, "functions"),
        (True, {"response_format": {"type": "json_object"}}, "response_format"),
        (True, {"logit_bias": {"5": 10}}, "logit_bias"),
        (True, {"n": 2}, "n"),
        (True, {"presence_penalty": 0.5}, "presence_penalty"),
        (True, {"store": True}, "store"),
        (True, {"top_k": 5}, "top_k"),  # unknown: refused like OpenAI does
        (True, {"top_logprobs": 2}, "top_logprobs"),  # without logprobs=true
        (True, {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        (True, {"logprobs": 1}, "logprobs"),
        (True, {"stream_options": {"include_usage": True}}, "stream_options"),  # not streaming
        (True, {"stream": True, "stream_options": {"x": 1}}, "stream_options"),
        (True, {"stream": "yes"}, "stream"),
        (True, {"prompt": "x"}, "prompt"),
        (False, {"echo": True}, "echo"),
        (False, {"best_of": 3}, "best_of"),
        (False, {"suffix": "end"}, "suffix"),
        (False, {"logprobs": True}, "logprobs"),  # an integer here
        (False, {"logprobs": 21}, "logprobs"),
        (False, {"messages": []}, "messages"),
        (False, {"tools": []}, "tools"),  # a chat field
    ],
)
def test_refused_fields_name_the_param(chat, extra, param):
    with pytest.raises(ProtocolError) as err:
        oai.parse({**(CHAT if chat else TEXT), **extra}, chat=chat, max_tokens_cap=64)
    assert err.value.field == param and param in str(err.value)


def test_noop_values_and_inert_fields_change_nothing():
    plain = oai.parse(CHAT, chat=True, max_tokens_cap=64)
    noop = {
        "n": 1, "tools": [], "tool_choice": "none", "response_format": {"type": "text"},
        "logit_bias": {}, "frequency_penalty": 0, "presence_penalty": 0.0, "user": "u-1",
        "metadata": {"a": "b"}, "store": False, "parallel_tool_calls": None, "logprobs": False,
    }  # fmt: skip
    ask = oai.parse({**CHAT, **noop}, chat=True, max_tokens_cap=64)
    assert ask.req.to_dict() | {"request_id": ""} == plain.req.to_dict() | {"request_id": ""}
    assert (ask.stream, ask.include_usage, ask.logprobs) == (False, False, False)
    text = oai.parse(
        {**TEXT, "echo": False, "best_of": 1, "logprobs": 3}, chat=False, max_tokens_cap=64
    )
    assert text.logprobs and text.top_logprobs == 3 and text.req.top_logprobs == 3
    streamed = oai.parse(
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "logprobs": True,
         "top_logprobs": 2}, chat=True, max_tokens_cap=64,
    )  # fmt: skip
    assert streamed.include_usage and streamed.req.top_logprobs == 2 and streamed.req.logprobs


def _entries(tok, ids, lps, *, stop=(), max_tokens=64, eos=0, seed=0):
    """Feed ids in random chunks as a stream would; returns (pieces, taken entries, stream)."""
    d = TextStream(tok, {eos}, stop, max_tokens)
    track = Logprobs(d, 2, offset=0)
    rng = random.Random(seed)
    pieces, taken, i = [], [], 0
    while i < len(ids):
        j = min(len(ids), i + rng.randint(1, 3))
        pieces.append(track.feed(ids[i:j], lps[i:j]))
        got = track.take()
        # A token goes out only once its whole text has.
        assert sum(len(t.token) for t in taken + got) <= d.sent
        taken += got
        i = j
    pieces.append(d.finish())
    taken += track.take(final=True)
    return pieces, taken, d


def _claims(ids):
    return [TokenLogprob(t, -0.1 * (k + 1), ((t, -0.1 * (k + 1)), (3, -5.0))) for k, t in enumerate(ids)]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_logprobs_join_to_exactly_the_text_sent(by_domain, seed):
    tok = by_domain["code"].tokenizer
    text = "héllo € 😀 x = 1"
    ids = [*tok.encode(text), 0, *tok.encode(" after eos")]
    pieces, taken, d = _entries(tok, ids, _claims(ids), seed=seed)
    assert "".join(pieces) == text
    assert "".join(t.token for t in taken) == text
    assert b"".join(t.token.encode() for t in taken) == text.encode()
    assert len(taken) == len(tok.encode(text))  # nothing from EOS on
    assert [t.offset for t in taken] == [sum(len(x.token) for x in taken[:k]) for k in range(len(taken))]  # fmt: skip
    assert [t.logprob for t in taken] == [-0.1 * (k + 1) for k in range(len(taken))]
    assert any(t.token == "" for t in taken)  # half a character: its bytes come with the next


def test_logprobs_stop_at_a_stop_sequence_and_at_max_tokens(by_domain):
    tok = by_domain["code"].tokenizer
    ids = tok.encode("a = 1\n\nb = 2\n")
    pieces, taken, _ = _entries(tok, ids, _claims(ids), stop=("\n\n",))
    assert "".join(pieces) == "a = 1" == "".join(t.token for t in taken)
    pieces, taken, _ = _entries(tok, ids, _claims(ids), max_tokens=3)
    assert len(taken) == 3 and "".join(t.token for t in taken) == "".join(pieces)


def test_alternatives_read_as_in_the_text(by_domain):
    tok = by_domain["code"].tokenizer
    ids = tok.encode("x = 1")
    d = TextStream(tok, {0}, (), 64)
    track = Logprobs(d, 1)
    lps = [TokenLogprob(t, -0.5, ((t, -0.5),)) for t in ids]
    track.feed(ids, lps)
    taken = track.take(final=True)
    assert [t.top[0][0] for t in taken] == [t.token for t in taken]  # leading spaces kept


@pytest.mark.parametrize(
    "lps",
    [
        [],  # none
        [TokenLogprob(7, -1.0, ((7, -1.0), (8, -2.0)))],  # names another token
        [TokenLogprob(5, -1.0, ((5, -1.0),))],  # fewer alternatives than asked
        [TokenLogprob(5, -1.0, ((5, -1.0), (10**6, -2.0)))],  # outside the vocabulary
        [TokenLogprob(5, -1.5, ((6, -1.0), (7, -2.0)))],  # likelier than an alternative
        [TokenLogprob(5, -1.0, ((5, -0.5), (6, -2.0)))],  # two values for one token
    ],
)
def test_claims_that_do_not_line_up_are_refused(by_domain, lps):
    d = TextStream(by_domain["code"].tokenizer, {0}, (), 64)
    with pytest.raises(ProtocolError):
        Logprobs(d, 2).feed([5], lps)


def test_answer_shapes():
    toks = [TokenInfo("a", -0.1, (("a", -0.1), ("b", -2.0)), 0), TokenInfo("é", -0.3, (), 1)]
    chat = oai.chat_logprobs(toks)["content"]
    assert chat[1] == {"token": "é", "logprob": -0.3, "bytes": [195, 169], "top_logprobs": []}
    assert chat[0]["top_logprobs"][1] == {"token": "b", "logprob": -2.0, "bytes": [98]}
    text = oai.text_logprobs(toks)
    assert text["tokens"] == ["a", "é"] and text["text_offset"] == [0, 1]
    assert text["top_logprobs"] == [{"a": -0.1, "b": -2.0}, {"é": -0.3}]  # the chosen included
    ask = oai.Ask(oai.to_generate(CHAT, chat=True, max_tokens_cap=64), True, True, True, 1)
    reply = oai.Reply(ask, chat=True, model="auto")
    first = reply.add("a", toks[:1])
    assert first["usage"] is None and first["choices"][0]["delta"]["role"] == "assistant"
    assert reply.add("", []) is None
    end, use = reply.last_chunks("length", 4, 2)
    assert end["choices"][0]["finish_reason"] == "length" and end["choices"][0]["logprobs"] is None
    assert use["choices"] == [] and use["usage"]["total_tokens"] == 6


def test_key_file_parsing_names_lines_never_keys():
    keys = parse_keys("# team keys\nsk-alice alice\n\nsk-bob\n")
    assert keys == {"sk-alice": "alice", "sk-bob": default_label("sk-bob")}
    assert default_label("sk-bob").startswith("sha256:") and "sk-bob" not in default_label("sk-bob")
    for bad in ("sk-secret a b", "sk-secret bad/label"):
        with pytest.raises(KeyFileError) as err:
            parse_keys("ok\n" + bad)
        assert "line 2" in str(err.value) and "sk-secret" not in str(err.value)


def test_key_file_reloads_on_change(tmp_path):
    path = tmp_path / "keys"
    path.write_text("sk-a alice\nsk-b\n")
    keys = ApiKeys(("sk-cli",), path, rpm=60, burst=1, reload_s=0.0)
    assert keys.label("sk-a") == "alice" and keys.label("sk-cli") and keys.label("x") is None
    assert keys.take("sk-a") == 0 and keys.take("sk-a") > 0  # burst of 1 spent
    path.write_text("sk-a alice\nsk-c carol\n# sk-b revoked\n")
    assert keys.label("sk-b") is None and keys.label("sk-c") == "carol"
    assert keys.take("sk-a") > 0  # a key that stays keeps its bucket
    path.write_text("sk-a a b c\n")  # broken: the keys in force stay
    assert keys.label("sk-c") == "carol" and keys.label("sk-cli")


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_validator_args(p)
    return p.parse_args(["--subtensor.network", "local", *argv])


def test_key_file_flags(tmp_path):
    path = tmp_path / "keys"
    path.write_text("sk-a alice\n")
    cfg = validator_config_from_args(
        _args("--gateway.port", "0", "--gateway.api_keys_file", str(path)), env={}
    )
    assert cfg.gateway.api_keys_file == path and cfg.gateway.api_keys == ()
    env = validator_config_from_args(_args("--gateway.port", "0"), env={"DMOE_API_KEYS_FILE": str(path)})  # fmt: skip
    assert env.gateway.api_keys_file == path
    path.write_text("sk-a x y\n")
    with pytest.raises(ConfigError, match="line 1"):
        validator_config_from_args(_args("--gateway.api_keys_file", str(path)), env={})
    with pytest.raises(ConfigError, match="cannot read"):
        validator_config_from_args(_args("--gateway.api_keys_file", str(tmp_path / "no")), env={})
