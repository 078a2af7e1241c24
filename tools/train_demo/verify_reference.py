"""Recompute models/reference/*.json with this machine's PyTorch (fp32, CPU) and compare:
logits within 1e-4 and identical greedy tokens. Usage: python3 verify_reference.py [models]"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402

from llama import load_pretrained  # noqa: E402
from train import greedy  # noqa: E402

models_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "models")
ok = True
for name in ("target", "draft"):
    m = load_pretrained(os.path.join(models_dir, f"demo-{name}"))
    ref = json.load(open(os.path.join(models_dir, "reference", f"{name}.json"), encoding="utf-8"))
    for p in ref["prompts"]:
        with torch.no_grad():
            lg = m(torch.tensor([p["input_ids"]]))[0]
        diff = float((lg[p["logits_positions"]] - torch.tensor(p["logits"])).abs().max())
        gen, _ = greedy(m, p["input_ids"], len(p["greedy_ids"]), torch.device("cpu"))
        same = gen == p["greedy_ids"]
        ok = ok and diff < 1e-4 and same
        print(f"{name} {p['id']}: max |logit diff| {diff:.2e}, greedy identical {same}", flush=True)
print(f"torch {torch.__version__}: " + ("reference outputs reproduced" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
