"""A Llama decoder in plain PyTorch with Hugging Face's parameter names and numerics.

Works with Debian's torch 1.13 (CPU) and torch 2.x (CUDA). The attention is written out
(causal mask, fp32 softmax) like transformers' eager path; on CUDA, training may use
F.scaled_dot_product_attention instead (``fast_attention``).

Also: safetensors read/write (the format is simple enough to do by hand) and the config.json
of an HF LlamaForCausalLM.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


def llama_config(*, vocab_size: int, hidden: int, layers: int, heads: int, kv_heads: int,
                 intermediate: int, max_pos: int, rope_theta: float, rope_scaling: dict | None,
                 tie: bool, dtype: str, bos_id: int, eos_id: int, rms_eps: float = 1e-5) -> dict:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_pos,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": rms_eps,
        "rope_scaling": rope_scaling,
        "rope_theta": rope_theta,
        "tie_word_embeddings": tie,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    return cfg


def rope_inv_freq(cfg: dict) -> torch.Tensor:
    """inv_freq as transformers computes it (default, or rope_type llama3)."""
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    base = cfg["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor = rs["factor"]
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / inv_freq
        inv_l = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        is_medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv_freq = torch.where(is_medium, smoothed, inv_l)
    elif rs:
        raise ValueError(f"unsupported rope_scaling {rs}")
    return inv_freq


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dt)


class Attention(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.nh, self.nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.hd = cfg.get("head_dim") or h // self.nh
        self.q_proj = nn.Linear(h, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, h, bias=False)

    def forward(self, x, cos, sin, fast: bool, dropout: float):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        cos_, sin_ = cos.to(q.dtype)[None, None], sin.to(q.dtype)[None, None]
        q = q * cos_ + rotate_half(q) * sin_
        k = k * cos_ + rotate_half(k) * sin_
        rep = self.nh // self.nkv
        if rep > 1:
            k = k[:, :, None].expand(B, self.nkv, rep, T, self.hd).reshape(B, self.nh, T, self.hd)
            v = v[:, :, None].expand(B, self.nkv, rep, T, self.hd).reshape(B, self.nh, T, self.hd)
        if fast:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:
            s = torch.matmul(q, k.transpose(2, 3)) * (self.hd ** -0.5)
            mask = torch.full((T, T), float("-inf"), device=x.device).triu(1)
            s = s + mask.to(s.dtype)
            p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
            if dropout > 0:
                p = F.dropout(p, dropout, training=True)
            o = torch.matmul(p, v)
        o = o.transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, i = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def forward(self, x, cos, sin, fast, dropout):
        a = self.self_attn(self.input_layernorm(x), cos, sin, fast, dropout)
        if dropout > 0:
            a = F.dropout(a, dropout, training=True)
        x = x + a
        m = self.mlp(self.post_attention_layernorm(x))
        if dropout > 0:
            m = F.dropout(m, dropout, training=True)
        return x + m


class Inner(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        self.tied = bool(cfg["tie_word_embeddings"])
        if not self.tied:
            self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)
        self.fast_attention = False
        self.dropout = 0.0

    def init_weights(self, gen: torch.Generator):
        std = self.cfg["initializer_range"]
        n_layers = self.cfg["num_hidden_layers"]
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
                continue
            s = std / math.sqrt(2 * n_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else std
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * s)

    def head_weight(self):
        return self.model.embed_tokens.weight if self.tied else self.lm_head.weight

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        pos = torch.arange(T, device=ids.device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.model.embed_tokens(ids)
        drop = self.dropout if self.training else 0.0
        for layer in self.model.layers:
            x = layer(x, cos, sin, self.fast_attention, drop)
        return self.model.norm(x)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.hidden(ids)
        return F.linear(h, self.head_weight())

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        sd = {k: v for k, v in self.state_dict().items() if k != "inv_freq"}
        if self.tied:
            sd.pop("lm_head.weight", None)
        return sd

    def load_hf_state_dict(self, sd: dict[str, torch.Tensor]):
        own = self.state_dict()
        missing = [k for k in own if k not in sd and k != "inv_freq"]
        extra = [k for k in sd if k not in own]
        if missing or extra:
            raise ValueError(f"state dict mismatch: missing {missing[:5]} extra {extra[:5]}")
        with torch.no_grad():
            for k, v in sd.items():
                own[k].copy_(v.to(own[k].dtype))


# ---- safetensors ---------------------------------------------------------------------------

_DT = {torch.float32: ("F32", 4), torch.float16: ("F16", 2), torch.bfloat16: ("BF16", 2)}
_DT_BACK = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def _raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None):
    header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name]
        code, size = _DT[t.dtype]
        b = _raw_bytes(t)
        assert len(b) == t.numel() * size
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = _DT_BACK[info["dtype"]]
        buf = bytearray(data[a:b])
        if dt == torch.bfloat16:
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(buf, dtype=dt)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def load_pretrained(folder: str, dtype=torch.float32) -> LlamaForCausalLM:
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    m = LlamaForCausalLM(cfg)
    m.load_hf_state_dict(load_safetensors(f"{folder}/model.safetensors"))
    return m.to(dtype).eval()
