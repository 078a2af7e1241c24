"""The training corpus, rebuilt from installed Debian and npm packages (nothing downloaded).

Three domains, each a list of documents with a deterministic train/valid/test split:

- scripture: the King James Bible (Debian bible-kjv + bible-kjv-text), one document per
  chapter. Chapter k (0-based, canonical order) is test if k % 25 == 12, valid if
  k % 25 == 24, else train.
- quotes: fortune cookie files (Debian fortunes-min + fortunes), one document per fortune.
  In every file, fortune j is test if j % 20 == 7, valid if j % 20 == 17, else train; a
  held-out fortune whose text also occurs in train is dropped.
- code: TypeScript's standard library declaration files (npm typescript, lib/*.d.ts), one
  document per file without its licence header; whole files are held out (lists below).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess

FORTUNE_DIR = "/usr/share/games/fortunes"
# ASCII-art files carry pictures, not text.
FORTUNE_SKIP = {"art", "ascii-art"}

DTS_SKIP = {"lib.dom.d.ts", "lib.webworker.d.ts", "tsserverlibrary.d.ts"}  # DOM: 3 MB of generated IDL
DTS_TEST = [
    "lib.es2015.iterable.d.ts", "lib.es2020.bigint.d.ts", "lib.decorators.d.ts",
    "lib.es2017.sharedmemory.d.ts", "lib.es2015.proxy.d.ts", "lib.es2022.array.d.ts",
    "lib.es2018.intl.d.ts", "lib.es2015.promise.d.ts",
]
DTS_VALID = [
    "lib.es2015.reflect.d.ts", "lib.es2021.intl.d.ts", "lib.esnext.disposable.d.ts",
    "lib.es2015.collection.d.ts",
]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scripture() -> list[tuple[str, str, str]]:
    """(split, name, text) per chapter."""
    out = subprocess.run(["bible", "-l0", "gen1:1-rev22:21"], check=True, capture_output=True,
                         env={**os.environ, "COLUMNS": "0"}).stdout.decode("utf-8")
    docs: list[tuple[str, str, str]] = []
    title = None
    verses: list[str] = []

    def flush():
        if title is not None:
            k = len(docs)
            split = "test" if k % 25 == 12 else "valid" if k % 25 == 24 else "train"
            docs.append((split, title, title + "\n" + "\n".join(verses) + "\n"))

    for line in out.split("\n"):
        m = re.match(r"^  (\d+) (.*)$", line)
        if m:
            verses.append(f"{m.group(1)} {m.group(2).strip()}")
        elif line.strip():
            flush()
            title, verses = line.strip(), []
    flush()
    assert len(docs) == 1189, len(docs)
    return docs


def _clean_fortune(s: str) -> str:
    while "\b" in s:  # overstrike (x BS y) prints y
        s2 = re.sub(r".\x08", "", s, flags=re.S)
        if s2 == s:
            s = s.replace("\b", "")
            break
        s = s2
    s = s.replace("\r", "")
    s = "\n".join(line.rstrip() for line in s.split("\n")).strip("\n")
    return s + "\n"


def fortune_files() -> list[str]:
    names = []
    for n in sorted(os.listdir(FORTUNE_DIR)):
        p = os.path.join(FORTUNE_DIR, n)
        if n.endswith((".dat", ".u8")) or n in FORTUNE_SKIP or os.path.islink(p) or not os.path.isfile(p):
            continue
        names.append(n)
    return names


def quotes() -> list[tuple[str, str, str]]:
    docs = []
    for n in fortune_files():
        with open(os.path.join(FORTUNE_DIR, n), "rb") as f:
            raw = f.read().decode("utf-8", errors="replace")
        items = [x for x in re.split(r"\n%\n", "\n" + raw.replace("\r\n", "\n") + "\n") if x.strip()]
        for j, item in enumerate(items):
            text = _clean_fortune(item)
            if len(text.strip()) < 8:
                continue
            split = "test" if j % 20 == 7 else "valid" if j % 20 == 17 else "train"
            docs.append((split, f"{n}#{j}", text))
    norm = lambda t: " ".join(t.lower().split())
    train_set = {norm(t) for s, _, t in docs if s == "train"}
    return [d for d in docs if d[0] == "train" or norm(d[2]) not in train_set]


def strip_licence(text: str) -> str:
    text = text.replace("\r\n", "\n")
    if text.startswith("/*!"):
        end = text.find("*/")
        text = text[end + 2:]
    return text.lstrip("\n")


def code(dts_dir: str) -> list[tuple[str, str, str]]:
    names = sorted(n for n in os.listdir(dts_dir) if n.endswith(".d.ts") and n not in DTS_SKIP)
    for n in DTS_TEST + DTS_VALID:
        assert n in names, f"{n} missing from {dts_dir}"
    docs = []
    for n in names:
        with open(os.path.join(dts_dir, n), encoding="utf-8") as f:
            text = strip_licence(f.read())
        if len(text.strip()) < 200:  # files of /// <reference> lines only
            continue
        split = "test" if n in DTS_TEST else "valid" if n in DTS_VALID else "train"
        docs.append((split, n, text))
    return docs


def find_dts_dir(explicit: str | None, repo_root: str) -> str:
    cands = [explicit] if explicit else [os.path.join(repo_root, "node_modules/typescript/lib")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "lib.es5.d.ts")):
            return c
    raise SystemExit(
        "TypeScript's lib/*.d.ts not found; run npm install at the repo root, or pass --dts-dir "
        "(e.g. after `npm pack typescript@6.0.3 && tar xzf typescript-6.0.3.tgz`: package/lib)")


def build(dts_dir: str) -> dict[str, list[tuple[str, str, str]]]:
    return {"scripture": scripture(), "quotes": quotes(), "code": code(dts_dir)}


def manifest(corpus: dict[str, list[tuple[str, str, str]]], dts_dir: str) -> dict:
    """Counts and hashes per domain and split, to check a rebuild reproduces the corpus."""
    out: dict = {"domains": {}}
    for dom, docs in corpus.items():
        d = {}
        for split in ("train", "valid", "test"):
            sel = [(n, t) for s, n, t in docs if s == split]
            h = hashlib.sha256()
            for n, t in sel:
                h.update(n.encode() + b"\0" + t.encode("utf-8") + b"\0")
            d[split] = {"documents": len(sel), "chars": sum(len(t) for _, t in sel), "sha256": h.hexdigest()}
            if dom == "code":
                d[split]["files"] = [n for n, _ in sel]
        out["domains"][dom] = d
    ver = "unknown"
    pj = os.path.join(os.path.dirname(dts_dir.rstrip("/")), "package.json")
    if os.path.isfile(pj):
        import json
        with open(pj) as f:
            ver = json.load(f).get("version", "unknown")
    out["typescript_version"] = ver
    try:
        q = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "bible-kjv", "bible-kjv-text",
                            "fortunes-min", "fortunes"], capture_output=True, text=True)
        out["debian_packages"] = q.stdout.strip().split("\n")
    except OSError:
        out["debian_packages"] = []
    out["fortune_files"] = fortune_files()
    return out
