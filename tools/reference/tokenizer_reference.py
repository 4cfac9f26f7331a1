#!/usr/bin/env python3
"""Reference token ids for llama::tokenizer on SmolLM2-135M-Instruct's GGUF vocabulary.

Needs: pip install gguf==0.19.0 regex tokenizers==0.23.3 numpy
Run:   scripts/fetch-assets && python3 tools/reference/tokenizer_reference.py
Writes llama/fixtures/tokenizer_reference.json.

Two implementations must agree on every text before anything is written:

1. Primary (independent of the `tokenizers` Rust core that llama::tokenizer uses): a pure-Python
   byte-level BPE in the style of OpenAI's GPT-2 `encoder.py` and llama.cpp's `llm_tokenizer_bpe`:
   split out the control tokens (token type 3), then pre-tokenize as llama.cpp does for
   `tokenizer.ggml.pre = "smollm"` (regexes `\\p{N}` then the GPT-2 pattern), map bytes to
   GPT-2's unicode alphabet, and merge the lowest-ranked pair until none is left.
2. Cross-check: the Python `tokenizers` package with the pipeline of SmolLM2's original
   tokenizer.json (BPE from the same vocab/merges, pre-tokenizer
   Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)],
   ByteLevel decoder, control tokens added as special tokens).

Texts: English, numbers, code, unicode, whitespace runs, special tokens, a ChatML prompt and a
real SuperNI instruction + input (task1572_samsum_summary, first train instance) read from
the data folder next to the repository (/work/shared/data/superni-cl15 or $SUPERNI_DIR).
"""

import json
import os
import pathlib

import gguf
import regex
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = pathlib.Path(__file__).resolve().parents[2]
ASSET = ROOT / "assets" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "llama" / "fixtures" / "tokenizer_reference.json"
SUPERNI = pathlib.Path(os.environ.get("SUPERNI_DIR", "/work/shared/data/superni-cl15"))

# llama.cpp llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SMOLLM (shared with STARCODER, REFACT, ...).
SMOLLM_SPLITS = [
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
]


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class PyBpe:
    def __init__(self, tokens, token_types, merges):
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.control = sorted((t for t, ty in zip(tokens, token_types) if ty == 3), key=len, reverse=True)
        self.control_re = regex.compile("|".join(regex.escape(t) for t in self.control))

    def pieces(self, text):
        words = [text]
        for pattern in SMOLLM_SPLITS:
            words = [w for word in words for w in self.split(pattern, word)]
        return words

    @staticmethod
    def split(pattern, text):
        """llama.cpp's unicode_regex_split: matches and the text between them are all pieces."""
        out, last = [], 0
        for m in regex.finditer(pattern, text):
            if m.start() > last:
                out.append(text[last:m.start()])
            out.append(m.group())
            last = m.end()
        if last < len(text):
            out.append(text[last:])
        return out

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == float("inf"):
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [self.ids[p] for p in parts]

    def encode(self, text):
        ids, last = [], 0
        segments = []
        for m in self.control_re.finditer(text):
            segments.append((text[last:m.start()], None))
            segments.append((None, m.group()))
            last = m.end()
        segments.append((text[last:], None))
        for plain, special in segments:
            if special is not None:
                ids.append(self.ids[special])
                continue
            for piece in self.pieces(plain):
                ids.extend(self.bpe("".join(self.byte_map[b] for b in piece.encode("utf-8"))))
        return ids


def hf_tokenizer(tokens, token_types, merges):
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                     merges=[tuple(m.split(" ")) for m in merges])
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t, ty in zip(tokens, token_types) if ty == 3])
    return tok


def superni_text():
    task = json.loads((SUPERNI / "task1572_samsum_summary" / "train.json").read_text())
    return task["Definition"][0] + "\n\nInput: " + task["Instances"][0]["input"] + "\nOutput:"


TEXTS = [
    "Hello world",
    "Hello, world! How are you today?",
    " leading space and trailing space ",
    "The year 2024 had 366 days; pi is 3.14159.",
    "12345",
    "Call me at +1 (555) 010-9999 or 0x1F.",
    "def add(a, b):\n    return a + b\n",
    "fn main() {\n\tprintln!(\"{}\", 42);\n}",
    "for (int i = 0; i < n; ++i) { x[i] *= 2; }",
    "Ünïcödé façade naïve café",
    "日本語のテキストと中文文本",
    "Emoji: 🦀🚀👍🏽 and ½ ² ³ Ⅻ",
    "Привет, мир! Γειά σου κόσμε",
    "a  b   c    d\t\te\n\n\nf",
    "\n\n",
    "   ",
    "",
    "I'm sure they'll say it's fine, we've done what you'd've done.",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|><|endoftext|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "not special: <|im_start and im_end|>",
    "URL https://example.com/path?q=1&r=two#frag",
    "snake_case_name camelCaseName SCREAMING_CASE",
    "Line one.\r\nLine two.\r\n",
    "$$E = mc^2$$ and \\frac{1}{2}",
    "“Smart quotes” — em dash – en dash … ellipsis",
    "                                        many spaces",
    superni_text(),
]


def main():
    reader = gguf.GGUFReader(ASSET)
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    tokens, token_types, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"), field("tokenizer.ggml.merges")
    assert field("tokenizer.ggml.pre") == "smollm" and field("tokenizer.ggml.model") == "gpt2"

    py, hf = PyBpe(tokens, token_types, merges), hf_tokenizer(tokens, token_types, merges)
    cases = []
    for text in TEXTS:
        ids = py.encode(text)
        hf_ids = hf.encode(text, add_special_tokens=False).ids
        assert ids == hf_ids, f"implementations disagree on {text!r}:\n{ids}\n{hf_ids}"
        decoded = hf.decode(ids, skip_special_tokens=False)
        assert decoded == text, (text, decoded)
        cases.append({"text": text, "ids": ids,
                      "decoded_skip_special": hf.decode(ids, skip_special_tokens=True)})
    fixture = {
        "generator": f"tools/reference/tokenizer_reference.py (pure-Python BPE, cross-checked with tokenizers {tokenizers.__version__})",
        "asset": ASSET.name,
        "vocab_size": len(tokens),
        "special": {t: i for i, (t, ty) in enumerate(zip(tokens, token_types)) if ty == 3},
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} texts)")


if __name__ == "__main__":
    main()
