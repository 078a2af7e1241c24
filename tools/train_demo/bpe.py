"""Byte-level BPE in the form Llama 3's tokenizer.json uses (standard library only).

- pre-tokenizer: the Llama 3 split regex (Isolated), then GPT-2 byte-to-unicode mapping;
- model: BPE with ``ignore_merges`` (a pre-token that is itself a vocabulary entry is one
  token; otherwise merges are applied lowest rank first);
- special tokens are split out of the text before pre-tokenization.

The trainer counts pre-token frequencies once and then updates pair counts incrementally,
touching only the words that contain the merged pair. Ties are broken by the pair's strings
(lexicographically smallest first), so training is deterministic.
"""

from __future__ import annotations

import heapq
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from typing import Iterable

# Llama 3's split pattern, exactly as in its tokenizer.json.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _category_class(prefix: str) -> str:
    """A character class body with every code point whose category starts with prefix."""
    ranges: list[tuple[int, int]] = []
    start = None
    for cp in range(sys.maxunicode + 1):
        hit = unicodedata.category(chr(cp)).startswith(prefix)
        if hit and start is None:
            start = cp
        elif not hit and start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, sys.maxunicode))

    def esc(cp: int) -> str:
        return "\\U%08x" % cp

    return "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in ranges)


_SPLIT_RE: re.Pattern | None = None


def split_regex() -> re.Pattern:
    """The Llama 3 pattern for Python's re: \\p{L} and \\p{N} expanded from unicodedata."""
    global _SPLIT_RE
    if _SPLIT_RE is None:
        letters, numbers = _category_class("L"), _category_class("N")
        pat = LLAMA3_PATTERN.replace(r"\p{L}", letters).replace(r"\p{N}", numbers)
        # A bare \p{..} outside brackets needs brackets once expanded.
        pat = pat.replace(letters + "+", "[" + letters + "]+", 1)
        pat = pat.replace(numbers + "{1,3}", "[" + numbers + "]{1,3}", 1)
        _SPLIT_RE = re.compile(pat)
    return _SPLIT_RE


def pretokenize(text: str) -> list[str]:
    """Split with behaviour Isolated: matches and the gaps between them are both kept."""
    out: list[str] = []
    pos = 0
    for m in split_regex().finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        if m.end() > m.start():
            out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_TO_UNI = bytes_to_unicode()
UNI_TO_BYTE = {v: k for k, v in BYTE_TO_UNI.items()}


def to_byte_level(s: str) -> str:
    return "".join(BYTE_TO_UNI[b] for b in s.encode("utf-8"))


# Llama 3's special tokens, in its order, then reserved ones up to `count`.
def special_token_names(count: int) -> list[str]:
    names = [
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
        "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
    ]
    i = 3
    while len(names) < count:
        names.append(f"<|reserved_special_token_{i}|>")
        i += 1
    return names[:count]


def train_bpe(texts: Iterable[str], vocab_size: int, log=print) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train byte-level BPE; returns (vocab without specials, merges in rank order)."""
    word_freq: Counter[str] = Counter()
    for t in texts:
        word_freq.update(to_byte_level(w) for w in pretokenize(t))
    items = sorted(word_freq.items())  # fixed order
    words: list[list[str]] = [list(w) for w, _ in items]
    freqs: list[int] = [f for _, f in items]

    vocab: dict[str, int] = {BYTE_TO_UNI[b]: b for b in range(256)}
    merges: list[tuple[str, str]] = []

    pair_count: dict[tuple[str, str], int] = defaultdict(int)
    pair_where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, w in enumerate(words):
        f = freqs[i]
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += f
            pair_where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        c = pair_count.get(pair, 0)
        if c != -negc:
            continue  # stale entry
        if c <= 0:
            break
        a, b = pair
        new = a + b
        merges.append(pair)
        if new not in vocab:
            vocab[new] = len(vocab)
        changed: set[tuple[str, str]] = set()
        for i in sorted(pair_where.pop(pair, ())):
            w = words[i]
            if len(w) < 2:
                continue
            out: list[str] = []
            j = 0
            hit = False
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(new)
                    j += 2
                    hit = True
                else:
                    out.append(w[j])
                    j += 1
            if not hit:
                continue
            f = freqs[i]
            for p in zip(w, w[1:]):
                pair_count[p] -= f
                changed.add(p)
            for p in zip(out, out[1:]):
                pair_count[p] += f
                pair_where[p].add(i)
                changed.add(p)
            words[i] = out
        pair_count.pop(pair, None)
        for p in changed:
            if p == pair:
                continue
            cnt = pair_count.get(p, 0)
            if cnt > 0:
                heapq.heappush(heap, (-cnt, p))
            else:
                pair_count.pop(p, None)
        if len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges, vocab {len(vocab)}, last {new!r} x{c}")
    return vocab, merges


class Tokenizer:
    """Encoder/decoder equivalent to the tokenizer.json this module writes."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], specials: dict[str, int]):
        self.vocab = vocab
        self.ranks = {m: r for r, m in enumerate(merges)}
        self.merges = merges
        self.specials = specials
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.id_to_token.update({i: t for t, i in specials.items()})
        self.bos_id = specials["<|begin_of_text|>"]
        self.eos_id = specials["<|end_of_text|>"]
        self._cache: dict[str, list[int]] = {}
        self._special_re = re.compile("(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")")

    @classmethod
    def from_file(cls, path: str) -> "Tokenizer":
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        m = tj["model"]
        merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
        specials = {t["content"]: t["id"] for t in tj["added_tokens"]}
        return cls(m["vocab"], merges, specials)

    def _bpe(self, word: str) -> list[int]:
        if word in self.vocab:  # ignore_merges
            return [self.vocab[word]]
        syms = list(word)
        while len(syms) > 1:
            best = None
            best_rank = None
            for j in range(len(syms) - 1):
                r = self.ranks.get((syms[j], syms[j + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = j, r
            if best is None:
                break
            a, b = syms[best], syms[best + 1]
            out = []
            j = 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            syms = out
        return [self.vocab[s] for s in syms]

    def encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        for w in pretokenize(text):
            bl = to_byte_level(w)
            got = self._cache.get(bl)
            if got is None:
                got = self._bpe(bl)
                if len(self._cache) < 500_000:
                    self._cache[bl] = got
            ids.extend(got)
        return ids

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Like tokenizer.encode(text) of the tokenizers library (specials recognised)."""
        ids = [self.bos_id] if add_bos else []
        for part in self._special_re.split(text):
            if not part:
                continue
            if part in self.specials:
                ids.append(self.specials[part])
            else:
                ids.extend(self.encode_ordinary(part))
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        out: list[str] = []
        buf = bytearray()
        for i in ids:
            t = self.id_to_token[int(i)]
            if t in self.specials:
                if buf:
                    out.append(buf.decode("utf-8", errors="replace"))
                    buf = bytearray()
                if not skip_special:
                    out.append(t)
            else:
                buf.extend(UNI_TO_BYTE[ch] for ch in t)
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


def tokenizer_json(vocab: dict[str, int], merges: list[tuple[str, str]], specials: dict[str, int]) -> dict:
    bos = "<|begin_of_text|>"
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t, i in sorted(specials.items(), key=lambda kv: kv[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {
            "type": "Sequence",
            "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                {
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [
                        {"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}},
                    ],
                    "special_tokens": {bos: {"id": bos, "ids": [specials[bos]], "tokens": [bos]}},
                },
            ],
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


# Llama 3 Instruct's chat template.
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def tokenizer_config(specials: dict[str, int], model_max_length: int) -> dict:
    return {
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for t, i in sorted(specials.items(), key=lambda kv: kv[1])
        },
        "bos_token": "<|begin_of_text|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|end_of_text|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
