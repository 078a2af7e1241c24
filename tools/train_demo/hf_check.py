"""Load the exported folders with Hugging Face transformers and compare with this tool's model.

Needs transformers (not a Debian package; it is installed on the project's GPU machine).
Checks, for models/demo-target and models/demo-draft:
  - from_pretrained reports no missing, unexpected or mismatched weights;
  - AutoTokenizer gives the ids of models/reference/tokens.json for every text;
  - fp32 logits (eager attention) match this tool's fp32 logits on every reference prompt
    (max abs difference < 1e-4), and 32 greedy tokens from generate() are identical.
Writes a JSON report (argument 2, default models/hf_check.json).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

from llama import load_pretrained  # noqa: E402


def check(models_dir: str) -> dict:
    import transformers
    from transformers import AutoTokenizer, LlamaForCausalLM

    rep: dict = {"transformers": transformers.__version__, "torch": torch.__version__, "models": {}}
    cases = json.load(open(os.path.join(models_dir, "reference", "tokens.json"), encoding="utf-8"))["cases"]
    ok_all = True
    for name in ("target", "draft"):
        folder = os.path.join(models_dir, f"demo-{name}")
        r: dict = {}
        tok = AutoTokenizer.from_pretrained(folder)
        bad = [c["id"] for c in cases if tok(c["text"])["input_ids"] != c["ids"]]
        dec_bad = [c["id"] for c in cases if len(c["ids"]) > 1 and tok.decode(c["ids"][1:]) != c["text"]]
        r["tokenizer_class"] = type(tok).__name__
        r["tokenizer_cases"] = len(cases)
        r["tokenizer_mismatches"] = bad
        r["decode_mismatches"] = dec_bad
        try:
            hf, info = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                                        output_loading_info=True)
        except TypeError:
            hf, info = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32,
                                                        attn_implementation="eager", output_loading_info=True)
        hf.eval()
        r["loading_info"] = {k: sorted(map(str, v)) for k, v in info.items() if k != "error_msgs"}
        r["loading_info"]["error_msgs"] = [str(x) for x in info.get("error_msgs", [])]
        ours = load_pretrained(folder)
        ref = json.load(open(os.path.join(models_dir, "reference", f"{name}.json"), encoding="utf-8"))
        diffs, greedy_same, ref_diffs = [], [], []
        with torch.no_grad():
            for p in ref["prompts"]:
                ids = torch.tensor([p["input_ids"]])
                a = hf(ids).logits[0].float()
                b = ours(ids)[0].float()
                diffs.append(float((a - b).abs().max()))
                rl = torch.tensor(p["logits"])
                ref_diffs.append(float((a[p["logits_positions"]] - rl).abs().max()))
                g = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False,
                                min_new_tokens=32, pad_token_id=0)
                greedy_same.append(g[0, ids.shape[1]:].tolist() == p["greedy_ids"])
        r["max_abs_logit_diff_vs_tool"] = max(diffs)
        r["max_abs_logit_diff_vs_reference_json"] = max(ref_diffs)
        r["greedy_identical"] = greedy_same
        r["ok"] = (not bad and not dec_bad and max(diffs) < 1e-4 and max(ref_diffs) < 1e-3 and all(greedy_same)
                   and not any(r["loading_info"].get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")))
        ok_all = ok_all and r["ok"]
        rep["models"][name] = r
        print(name, json.dumps(r), flush=True)
    rep["ok"] = ok_all
    return rep


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "models")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(models_dir, "hf_check.json")
    try:
        rep = check(models_dir)
    except Exception:  # report, don't hide
        rep = {"ok": False, "error": traceback.format_exc()}
        print(rep["error"], flush=True)
    with open(out, "w") as f:
        json.dump(rep, f, indent=2)
        f.write("\n")
    print("hf_check ok" if rep["ok"] else "hf_check FAILED", flush=True)


if __name__ == "__main__":
    main()
