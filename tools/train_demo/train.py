#!/usr/bin/python3
"""Train the bundled demo pair: a 16-layer Llama target and a 1-layer draft distilled from it.

Stages (``--stages``, comma separated, default all of them in this order):

  prepare   corpus from installed packages -> byte-level BPE tokenizer -> token streams
            (work dir) + prompt sets and corpus manifest (out dir)
  target    train the target on the training split; keep the best validation checkpoint;
            export it in Hugging Face layout (bf16)
  draft     distil the draft from the exported target (KL to the target's distribution);
            export it (f16)
  evaluate  from the stored weights, in fp32: held-out perplexity of both models, the
            draft's agreement with the target, reference outputs, loss curves, model card

Deterministic given --seed (fixed step counts; the wall-clock caps only guard the time budget
and are logged if they stop a run early).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bpe  # noqa: E402
import corpus as corpus_mod  # noqa: E402
from llama import LlamaForCausalLM, llama_config, load_pretrained, load_safetensors, save_safetensors  # noqa: E402

DOMAINS = ("scripture", "quotes", "code")
N_SPECIAL = 16


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def write_json(path, obj, indent=2):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- prepare -------------------------------------------------------------------------------

def _cut_after_word(text: str, end: int) -> int:
    """Largest e <= end with text[e-1] not whitespace and text[e] whitespace."""
    e = min(end, len(text) - 1)
    while e > 1 and not (not text[e - 1].isspace() and text[e].isspace()):
        e -= 1
    return e


def make_prompts(corp, rng: random.Random, n: int) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    # scripture: from the start of a verse (or the chapter title), 120-400 characters
    docs = [(nm, t) for s, nm, t in corp["scripture"] if s == "test"]
    out = []
    while len(out) < n:
        nm, t = docs[rng.randrange(len(docs))]
        starts = [0] + [i + 1 for i, ch in enumerate(t) if ch == "\n" and i + 1 < len(t) - 200]
        st = starts[rng.randrange(len(starts))]
        e = _cut_after_word(t, st + rng.randint(120, 400))
        if e - st < 60:
            continue
        text = t[st:e]
        if any(p["text"] == text for p in out):
            continue
        out.append({"id": f"scripture-{len(out):02d}", "text": text, "source": f"KJV {nm}"})
    sets["scripture"] = out
    # quotes: the first 40-70% of a fortune of at least 80 characters
    docs = [(nm, t) for s, nm, t in corp["quotes"] if s == "test" and 80 <= len(t) <= 600]
    out = []
    used = set()
    while len(out) < n:
        k = rng.randrange(len(docs))
        if k in used:
            continue
        used.add(k)
        nm, t = docs[k]
        e = _cut_after_word(t, int(len(t) * rng.uniform(0.4, 0.7)))
        if e < 30:
            continue
        out.append({"id": f"quotes-{len(out):02d}", "text": t[:e], "source": f"fortune {nm}"})
    sets["quotes"] = out
    # code: from the start of a line of a held-out .d.ts file, 150-400 characters
    docs = [(nm, t) for s, nm, t in corp["code"] if s == "test" and len(t) > 2000]
    out = []
    while len(out) < n:
        nm, t = docs[rng.randrange(len(docs))]
        starts = [i + 1 for i, ch in enumerate(t) if ch == "\n" and i + 1 < len(t) - 500 and t[i + 1] != "\n"]
        st = starts[rng.randrange(len(starts))]
        while t[st] in " \t":  # start at the line's first character, without its indentation
            st += 1
        e = _cut_after_word(t, st + rng.randint(150, 400))
        text = t[st:e]
        if e - st < 80 or any(p["text"] == text for p in out):
            continue
        out.append({"id": f"code-{len(out):02d}", "text": text, "source": f"typescript/lib/{nm}"})
    sets["code"] = out
    return sets


def stage_prepare(args):
    repo_root = os.path.abspath(os.path.join(HERE, "..", ".."))
    dts = corpus_mod.find_dts_dir(args.dts_dir, repo_root)
    log("corpus: building from packages; d.ts from", dts)
    corp = corpus_mod.build(dts)
    man = corpus_mod.manifest(corp, dts)
    write_json(os.path.join(args.out, "corpus", "manifest.json"), man)

    log("tokenizer: training byte-level BPE,", args.vocab, "tokens")
    t0 = time.time()
    texts = [t for dom in DOMAINS for s, _, t in corp[dom] if s == "train"]
    n_base = args.vocab - N_SPECIAL
    vocab, merges = bpe.train_bpe(texts, n_base, log=log)
    assert len(vocab) == n_base, len(vocab)
    specials = {name: n_base + i for i, name in enumerate(bpe.special_token_names(N_SPECIAL))}
    tokdir = os.path.join(args.work, "tokenizer")
    os.makedirs(tokdir, exist_ok=True)
    with open(os.path.join(tokdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(bpe.tokenizer_json(vocab, merges, specials), f, ensure_ascii=False, indent=2)
        f.write("\n")
    write_json(os.path.join(tokdir, "tokenizer_config.json"), bpe.tokenizer_config(specials, args.max_pos))
    log(f"tokenizer: {len(merges)} merges in {time.time() - t0:.1f}s")

    tok = bpe.Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    stats = {}
    datadir = os.path.join(args.work, "data")
    os.makedirs(datadir, exist_ok=True)
    for dom in DOMAINS:
        for split in ("train", "valid", "test"):
            stream: list[int] = []
            n_chars = 0
            for s, _, t in corp[dom]:
                if s != split:
                    continue
                ids = tok.encode(t, add_bos=True)
                if split != "train":
                    assert tok.decode(ids[1:]) == t, "round trip failed"
                stream.extend(ids)
                stream.append(tok.eos_id)
                n_chars += len(t)
            np.asarray(stream, dtype=np.uint16).tofile(os.path.join(datadir, f"{dom}_{split}.bin"))
            stats[f"{dom}_{split}"] = {"tokens": len(stream), "chars": n_chars}
            log(f"tokens {dom}/{split}: {len(stream)} ({n_chars / max(1, len(stream)):.2f} chars/token)")
    write_json(os.path.join(datadir, "stats.json"), stats)

    rng = random.Random(args.seed)
    sets = make_prompts(corp, rng, args.prompts)
    for name, items in sets.items():
        p = os.path.join(args.out, "prompts", f"{name}.jsonl")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            for it in items:
                f.write(json.dumps(it, ensure_ascii=False) + "\n")
    log("prompt sets written")


# ---- training ------------------------------------------------------------------------------

def setup_torch(args):
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    else:
        torch.use_deterministic_algorithms(True)
        if args.threads:
            torch.set_num_threads(args.threads)
    return dev


def load_stream(work, dom, split) -> np.ndarray:
    return np.fromfile(os.path.join(work, "data", f"{dom}_{split}.bin"), dtype=np.uint16).astype(np.int64)


def train_stream(work) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([load_stream(work, d, "train") for d in DOMAINS]))


def eval_windows(work, split, T, max_windows) -> dict[str, torch.Tensor]:
    """Non-overlapping windows of T+1 tokens (overlapping by one) per domain."""
    out = {}
    for d in DOMAINS:
        s = torch.from_numpy(load_stream(work, d, split))
        n = min((len(s) - 1) // T, max_windows) if max_windows else (len(s) - 1) // T
        out[d] = torch.stack([s[i * T: i * T + T + 1] for i in range(n)])
    return out


def autocast_ctx(dev, enabled):
    if dev.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def lr_at(step, total, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def make_optimizer(model, lr, wd):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def eval_loss(model, windows: dict[str, torch.Tensor], dev, amp, bs=32, teacher=None) -> dict[str, float]:
    """Mean next-token CE per domain (or, with teacher, KL(teacher || model))."""
    model.eval()
    res = {}
    tot, cnt = 0.0, 0
    for d, w in windows.items():
        s, n = 0.0, 0
        for i in range(0, len(w), bs):
            b = w[i:i + bs].to(dev)
            with autocast_ctx(dev, amp):
                logits = model(b[:, :-1]).float()
                if teacher is None:
                    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="sum")
                else:
                    tl = teacher(b[:, :-1]).float()
                    loss = kl_sum(logits, tl)
            s += loss.item()
            n += b[:, 1:].numel()
        res[d] = s / n
        tot += s
        cnt += n
    res["all"] = tot / cnt
    model.train()
    return res


def kl_sum(student_logits, teacher_logits):
    lq = F.log_softmax(student_logits.reshape(-1, student_logits.shape[-1]), -1)
    lp = F.log_softmax(teacher_logits.reshape(-1, teacher_logits.shape[-1]), -1)
    return (lp.exp() * (lp - lq)).sum()


def run_training(kind, model, dev, args, stream, valid, teacher=None):
    """Fixed-step AdamW training on random windows; returns (best state, log)."""
    steps, bs, T = (args.target_steps, args.target_batch, args.seq) if kind == "target" else \
        (args.draft_steps, args.draft_batch, args.seq)
    peak = args.target_lr if kind == "target" else args.draft_lr
    cap = args.target_wall if kind == "target" else args.draft_wall
    eval_every = args.eval_every
    opt = make_optimizer(model, peak, args.wd)
    gen = torch.Generator().manual_seed(args.seed + (1 if kind == "target" else 2))
    stream_dev = stream.to(dev)
    ar = torch.arange(T + 1, device=dev)
    hist = {"train": [], "valid": [], "config": {"steps": steps, "batch": bs, "seq": T, "lr": peak}}
    best = (float("inf"), None, -1)
    t0 = time.time()
    model.train()
    stopped_early = False
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak, args.warmup)
        starts = torch.randint(0, len(stream) - T - 1, (bs,), generator=gen).to(dev)
        b = stream_dev[starts[:, None] + ar[None, :]]
        with autocast_ctx(dev, args.amp):
            logits = model(b[:, :-1]).float()
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1))
            if teacher is None:
                loss = ce
            else:
                with torch.no_grad():
                    tl = teacher(b[:, :-1]).float()
                kl = kl_sum(logits, tl) / b[:, 1:].numel()
                loss = (1 - args.draft_ce) * kl + args.draft_ce * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 10 == 9 or step == steps - 1:
            hist["train"].append([step + 1, round(loss.item(), 5), round(ce.item(), 5), round(time.time() - t0, 2)])
        if (step + 1) % eval_every == 0 or step == steps - 1:
            v = eval_loss(model, valid, dev, args.amp, teacher=teacher)
            v["step"] = step + 1
            v["time"] = round(time.time() - t0, 2)
            hist["valid"].append(v)
            key = v["all"]
            if key < best[0]:
                best = (key, {k: t.detach().float().cpu().clone() for k, t in model.hf_state_dict().items()}, step + 1)
            tps = (step + 1) * bs * T / (time.time() - t0)
            log(f"{kind} step {step + 1}/{steps} loss {loss.item():.4f} valid {json.dumps({k: round(x, 4) for k, x in v.items() if k in DOMAINS or k == 'all'})} {tps:.0f} tok/s")
        stop_after = args.target_stop_after if kind == "target" else 0
        if time.time() - t0 > cap or (stop_after and step + 1 >= stop_after):
            if stop_after and step + 1 >= stop_after:
                log(f"{kind}: stopping after step {step + 1} as asked (schedule of {steps} steps)")
            else:
                log(f"{kind}: WALL-CLOCK CAP {cap}s hit at step {step + 1}; stopping early (run not step-deterministic)")
                stopped_early = True
            v = eval_loss(model, valid, dev, args.amp, teacher=teacher)
            v["step"] = step + 1
            hist["valid"].append(v)
            if v["all"] < best[0]:
                best = (v["all"], {k: t.detach().float().cpu().clone() for k, t in model.hf_state_dict().items()}, step + 1)
            break
    hist["seconds"] = round(time.time() - t0, 1)
    hist["best_step"] = best[2]
    hist["best_valid"] = best[0]
    hist["wall_cap_hit"] = stopped_early
    hist["steps_done"] = step + 1
    hist["tokens_seen"] = (step + 1) * bs * T
    hist["device"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    return best[1], hist


def export(folder, cfg, sd, dtype, tokdir, gen_eos):
    os.makedirs(folder, exist_ok=True)
    save_safetensors(os.path.join(folder, "model.safetensors"), {k: v.to(dtype) for k, v in sd.items()})
    write_json(os.path.join(folder, "config.json"), cfg)
    write_json(os.path.join(folder, "generation_config.json"),
               {"bos_token_id": cfg["bos_token_id"], "eos_token_id": gen_eos, "do_sample": False})
    for n in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tokdir, n), os.path.join(folder, n))


def model_configs(args, tok: bpe.Tokenizer):
    V = args.vocab
    t = llama_config(vocab_size=V, hidden=args.t_hidden, layers=args.t_layers, heads=args.t_heads,
                     kv_heads=args.t_kv, intermediate=args.t_inter, max_pos=args.max_pos, rope_theta=10000.0,
                     rope_scaling={"factor": 4.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                   "original_max_position_embeddings": args.max_pos // 4, "rope_type": "llama3"},
                     tie=True, dtype="bfloat16", bos_id=tok.bos_id, eos_id=tok.eos_id)
    d = llama_config(vocab_size=V, hidden=args.d_hidden, layers=args.d_layers, heads=args.d_heads,
                     kv_heads=args.d_kv, intermediate=args.d_inter, max_pos=args.max_pos, rope_theta=10000.0,
                     rope_scaling=None, tie=False, dtype="float16", bos_id=tok.bos_id, eos_id=tok.eos_id)
    return t, d


def stage_target(args, dev):
    tokdir = os.path.join(args.work, "tokenizer")
    tok = bpe.Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    tcfg, _ = model_configs(args, tok)
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(tcfg)
    model.init_weights(torch.Generator().manual_seed(args.seed))
    model.dropout = args.dropout
    model.to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"target: {n_params} parameters")
    stream = train_stream(args.work)
    valid = eval_windows(args.work, "valid", args.seq, args.valid_windows)
    sd, hist = run_training("target", model, dev, args, stream, valid)
    hist["parameters"] = n_params
    write_json(os.path.join(args.work, "log_target.json"), hist)
    export(os.path.join(args.out, "demo-target"), tcfg, sd, torch.bfloat16, tokdir, [tok.eos_id, tok.specials["<|eot_id|>"]])
    log("target exported")


def stage_draft(args, dev):
    tokdir = os.path.join(args.work, "tokenizer")
    tok = bpe.Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    _, dcfg = model_configs(args, tok)
    teacher = load_pretrained(os.path.join(args.out, "demo-target")).to(dev)  # the stored (bf16) weights
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(args.seed + 2)
    model = LlamaForCausalLM(dcfg)
    model.init_weights(torch.Generator().manual_seed(args.seed + 2))
    model.to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"draft: {n_params} parameters")
    stream = train_stream(args.work)
    valid = eval_windows(args.work, "valid", args.seq, args.valid_windows)
    sd, hist = run_training("draft", model, dev, args, stream, valid, teacher=teacher)
    hist["parameters"] = n_params
    write_json(os.path.join(args.work, "log_draft.json"), hist)
    export(os.path.join(args.out, "demo-draft"), dcfg, sd, torch.float16, tokdir, [tok.eos_id, tok.specials["<|eot_id|>"]])
    log("draft exported")


# ---- evaluation ----------------------------------------------------------------------------

@torch.no_grad()
def greedy(model, ids: list[int], n: int, dev) -> tuple[list[int], float]:
    """n greedy tokens (full recompute each step); also the smallest top-1/top-2 logit gap."""
    seq = list(ids)
    margin = float("inf")
    for _ in range(n):
        logits = model(torch.tensor([seq], device=dev))[0, -1].float()
        top = torch.topk(logits, 2)
        margin = min(margin, (top.values[0] - top.values[1]).item())
        seq.append(int(top.indices[0]))
    return seq[len(ids):], margin


@torch.no_grad()
def greedy_batch(model, prompts: list[list[int]], n: int, dev):
    """Greedy continuation of several prompts at once (right padding; causal attention keeps
    each row's padding out of its earlier positions). Returns the filled batch and lengths."""
    L = max(len(p) for p in prompts) + n
    x = torch.zeros(len(prompts), L, dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):
        x[i, :len(p)] = torch.tensor(p, device=dev)
    cur = torch.tensor([len(p) for p in prompts], device=dev)
    rows = torch.arange(len(prompts), device=dev)
    for _ in range(n):
        logits = model(x[:, :int(cur.max())])
        x[rows, cur] = logits[rows, cur - 1].argmax(-1)
        cur = cur + 1
    return x, cur


@torch.no_grad()
def agreement_counts(tl: torch.Tensor, dl: torch.Tensor) -> dict[str, int]:
    """Target's greedy token at each position vs the draft's top-1/4/16."""
    tgt = tl.argmax(-1)
    top16 = torch.topk(dl, 16, dim=-1).indices
    hit = top16 == tgt[..., None]
    return {"n": tgt.numel(), "top1": int(hit[..., :1].any(-1).sum()), "top4": int(hit[..., :4].any(-1).sum()),
            "top16": int(hit.any(-1).sum())}


def stage_evaluate(args, dev):
    out = args.out
    tokdir = os.path.join(out, "demo-target")
    tok = bpe.Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    target = load_pretrained(os.path.join(out, "demo-target")).to(dev)
    draft = load_pretrained(os.path.join(out, "demo-draft")).to(dev)
    metrics: dict = {"computed_on": f"{dev.type}, fp32, torch {torch.__version__}", "heldout": {}, "prompts": {}}
    t0 = time.time()
    # held-out test text, teacher forced
    test = eval_windows(args.work, "test", args.seq, args.test_windows)
    for d, w in test.items():
        nll = {"target": 0.0, "draft": 0.0}
        agg = {"n": 0, "top1": 0, "top4": 0, "top16": 0}
        for i in range(0, len(w), 8):
            b = w[i:i + 8].to(dev)
            tl = target(b[:, :-1]).float()
            dl = draft(b[:, :-1]).float()
            for name, lg in (("target", tl), ("draft", dl)):
                nll[name] += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), b[:, 1:].reshape(-1), reduction="sum").item()
            for k, v in agreement_counts(tl, dl).items():
                agg[k] += v
        n = agg["n"]
        metrics["heldout"][d] = {
            "tokens": n,
            "ppl_target": math.exp(nll["target"] / n), "ppl_draft": math.exp(nll["draft"] / n),
            "top1": agg["top1"] / n, "top4": agg["top4"] / n, "top16": agg["top16"] / n,
        }
        log(f"held-out {d}: {json.dumps({k: round(v, 4) for k, v in metrics['heldout'][d].items()})}")
    # prompt sets: along the target's greedy continuation (what speculative decoding sees)
    for name in DOMAINS if args.eval_prompts else ():
        items = [json.loads(x) for x in open(os.path.join(out, "prompts", f"{name}.jsonl"), encoding="utf-8")]
        prompts = [tok.encode(it["text"]) for it in items]
        x, _ = greedy_batch(target, prompts, args.gen_tokens, dev)
        tl_all = target(x[:, :-1]).float()
        dl_all = draft(x[:, :-1]).float()
        agg = {"n": 0, "top1": 0, "top4": 0, "top16": 0}
        for i, p in enumerate(prompts):
            sl = slice(len(p) - 1, len(p) - 1 + args.gen_tokens)
            for k, v in agreement_counts(tl_all[i, sl], dl_all[i, sl]).items():
                agg[k] += v
        n = agg["n"]
        metrics["prompts"][name] = {"prompts": len(items), "positions": n, "top1": agg["top1"] / n,
                                    "top4": agg["top4"] / n, "top16": agg["top16"] / n}
        log(f"prompt set {name}: {json.dumps(metrics['prompts'][name])}")
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    write_json(os.path.join(out, "metrics.json"), metrics)
    return metrics


TOKENIZER_CASES = [
    "It's 12345 o'clock!  Hello\tworld\n\n\n    indented line",
    "naïve café — 日本語 ✓ 😀 Ⅻ ² ½",
    "I'LL SEE 'S 'd THEY'RE we've",
    "<|start_header_id|>user<|end_header_id|>\n\nWho begat Enos?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "   leading spaces and trailing spaces   ",
    "line one\r\nline two\r\n",
    "x=1;y=22;z=333;w=4444;v=55555",
    "interface Foo<T extends object> { bar?(x: T): Promise<void>; }",
    "",
]


def write_token_cases(out, tok):
    cases = [{"id": f"case-{i}", "text": t, "ids": tok.encode(t)} for i, t in enumerate(TOKENIZER_CASES)]
    for name in DOMAINS:
        for x in open(os.path.join(out, "prompts", f"{name}.jsonl"), encoding="utf-8"):
            it = json.loads(x)
            cases.append({"id": it["id"], "text": it["text"], "ids": tok.encode(it["text"])})
    for c in cases:
        assert tok.decode(c["ids"][1:]) == c["text"]
    write_json(os.path.join(out, "reference", "tokens.json"), {
        "tokenizer": "models/demo-target/tokenizer.json (same file in models/demo-draft)",
        "note": "ids = tokenizer.encode(text) with the post-processor's <|begin_of_text|>; decode(ids[1:]) == text",
        "cases": cases}, indent=None)


def stage_reference(args, dev):
    """Reference outputs of the stored weights in fp32 for the TypeScript runtime's test."""
    out = args.out
    tok = bpe.Tokenizer.from_file(os.path.join(out, "demo-target", "tokenizer.json"))
    write_token_cases(out, tok)
    models = {n: load_pretrained(os.path.join(out, f"demo-{n}")).to(dev) for n in ("target", "draft")}
    cands = [{"id": "plain", "text": "In the beginning God created"}]
    for name in DOMAINS:
        cands += [json.loads(x) for x in open(os.path.join(out, "prompts", f"{name}.jsonl"), encoding="utf-8")]
    def usable(c):  # no near-ties and no EOS in either model's 32 greedy tokens
        ids = tok.encode(c["text"])
        for m in models.values():
            gen, margin = greedy(m, ids, 32, dev)
            if margin < args.ref_margin or tok.eos_id in gen:
                return False
        return True

    chosen = []
    for group in ("plain", "scripture", "quotes", "code"):  # one per set where possible
        for c in cands:
            if c["id"].split("-")[0] == group and usable(c):
                chosen.append(c)
                break
    for c in cands:  # then fill up to 4
        if len(chosen) >= 4:
            break
        if c not in chosen and usable(c):
            chosen.append(c)
    for name, m in models.items():
        prompts = []
        for c in chosen:
            ids = tok.encode(c["text"])
            with torch.no_grad():
                logits = m(torch.tensor([ids], device=dev))[0].float().cpu()
            gen, margin = greedy(m, ids, 32, dev)
            prompts.append({
                "id": c["id"], "text": c["text"], "input_ids": ids,
                "logits_positions": [len(ids) - 2, len(ids) - 1],
                "logits": [[round(float(x), 5) for x in logits[p]] for p in (len(ids) - 2, len(ids) - 1)],
                "greedy_ids": gen, "greedy_text": tok.decode(gen), "greedy_min_margin": round(margin, 5),
            })
        write_json(os.path.join(out, "reference", f"{name}.json"), {
            "model": f"models/demo-{name}",
            "computed_with": f"tools/train_demo (PyTorch {torch.__version__}, {dev.type}, float32 from the stored weights)",
            "input_ids_note": "tokenizer.encode(text) with the post-processor's <|begin_of_text|>",
            "greedy_note": "32 greedy tokens, argmax over full fp32 logits, no stop on EOS",
            "tolerance": {"logits_abs": 1e-3, "greedy": "identical"},
            "prompts": prompts,
        }, indent=None)
    log("reference outputs:", [c["id"] for c in chosen])


def stage_plot(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lt = read_json(os.path.join(args.out, "training", "log_target.json"))
    ld = read_json(os.path.join(args.out, "training", "log_draft.json"))
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    tr = np.array([r[:3] for r in lt["train"]])
    ax[0].plot(tr[:, 0], tr[:, 2], lw=0.8, alpha=0.7, label="train (batch CE)")
    for d in ("all",) + DOMAINS:
        v = [(r["step"], r[d]) for r in lt["valid"]]
        ax[0].plot([a for a, _ in v], [b for _, b in v], marker="o", ms=2.5,
                   label=f"valid {d}" if d != "all" else "valid (all)")
    ax[0].axvline(lt["best_step"], color="k", ls=":", lw=0.8, label=f"kept: step {lt['best_step']}")
    ax[0].set_title(f"target ({lt['parameters'] / 1e6:.2f}M params): cross-entropy")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("nats/token")
    ax[0].set_ylim(top=min(8.5, float(tr[:, 2].max()) + 0.2))
    ax[0].legend(fontsize=8)
    tr = np.array([r[:3] for r in ld["train"]])
    ax[1].plot(tr[:, 0], tr[:, 1], lw=0.8, alpha=0.7, label="train loss (KL to target)")
    ax[1].plot(tr[:, 0], tr[:, 2], lw=0.8, alpha=0.7, label="train CE")
    v = [(r["step"], r["all"]) for r in ld["valid"]]
    ax[1].plot([a for a, _ in v], [b for _, b in v], marker="o", ms=2.5, label="valid KL (all)")
    ax[1].set_title(f"draft ({ld['parameters'] / 1e6:.2f}M params): distillation")
    ax[1].set_xlabel("step")
    ax[1].set_ylim(0, min(8.5, float(tr[:, 2].max()) + 0.2))
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "loss.png"), dpi=110)
    log("loss.png written")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default="prepare,target,draft,evaluate")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "models"))
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--dts-dir", default=None, help="TypeScript's lib folder (default node_modules/typescript/lib)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--amp", type=int, default=1, help="bf16 autocast on CUDA")
    # target
    ap.add_argument("--t-hidden", type=int, default=192)
    ap.add_argument("--t-layers", type=int, default=16)
    ap.add_argument("--t-heads", type=int, default=6)
    ap.add_argument("--t-kv", type=int, default=2)
    ap.add_argument("--t-inter", type=int, default=512)
    ap.add_argument("--target-steps", type=int, default=2500)
    ap.add_argument("--target-batch", type=int, default=32)
    ap.add_argument("--target-lr", type=float, default=2e-3)
    ap.add_argument("--target-wall", type=float, default=1e9)
    ap.add_argument("--target-stop-after", type=int, default=0,
                    help="stop after this many steps of the --target-steps schedule (replays a capped run)")
    ap.add_argument("--dropout", type=float, default=0.1)
    # draft
    ap.add_argument("--d-hidden", type=int, default=128)
    ap.add_argument("--d-layers", type=int, default=1)
    ap.add_argument("--d-heads", type=int, default=4)
    ap.add_argument("--d-kv", type=int, default=2)
    ap.add_argument("--d-inter", type=int, default=384)
    ap.add_argument("--draft-steps", type=int, default=3000)
    ap.add_argument("--draft-batch", type=int, default=32)
    ap.add_argument("--draft-lr", type=float, default=3e-3)
    ap.add_argument("--draft-wall", type=float, default=1e9)
    ap.add_argument("--draft-ce", type=float, default=0.0, help="weight of CE mixed into the KL loss")
    # common
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=125)
    ap.add_argument("--valid-windows", type=int, default=48, help="per domain")
    ap.add_argument("--test-windows", type=int, default=0, help="per domain, 0 = all")
    ap.add_argument("--gen-tokens", type=int, default=48)
    ap.add_argument("--target-weights", default=None, help="model.safetensors for stage import-target")
    ap.add_argument("--eval-prompts", type=int, default=1, help="also measure agreement on the prompt sets")
    ap.add_argument("--ref-margin", type=float, default=0.02)
    args = ap.parse_args(argv)
    args.out = os.path.abspath(args.out)
    args.work = os.path.abspath(args.work)
    stages = args.stages.split(",")
    log("args:", json.dumps(vars(args)))
    if "prepare" in stages:
        stage_prepare(args)
    dev = setup_torch(args)
    if "target" in stages:
        stage_target(args, dev)
    if "import-target" in stages:  # a target trained elsewhere (bare model.safetensors)
        tokdir = os.path.join(args.work, "tokenizer")
        tok = bpe.Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
        tcfg, _ = model_configs(args, tok)
        sd = load_safetensors(args.target_weights)
        LlamaForCausalLM(tcfg).load_hf_state_dict(sd)  # checks names and shapes
        export(os.path.join(args.out, "demo-target"), tcfg, sd, torch.bfloat16, tokdir, [tok.eos_id, tok.specials["<|eot_id|>"]])
        log("target imported from", args.target_weights)
    if "draft" in stages:
        stage_draft(args, dev)
    if "heldout" in stages:  # metrics only
        stage_evaluate(args, dev)
    if "evaluate" in stages:
        os.makedirs(os.path.join(args.out, "training"), exist_ok=True)
        for k in ("target", "draft"):
            src = os.path.join(args.work, f"log_{k}.json")
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(args.out, "training", f"log_{k}.json"))
        stage_evaluate(args, dev)
        stage_reference(args, torch.device("cpu"))
        stage_plot(args)


if __name__ == "__main__":
    main()
