#!/usr/bin/env python3
"""Generate golden reference files for the C++ T5 implementation.

Builds two tiny, randomly initialised Hugging Face ``T5ForConditionalGeneration``
models with fixed seeds and writes, for each, under ``test/golden/<name>/``:

  config.json, generation_config.json, model.safetensors   (model.save_pretrained)
  io.safetensors                                            (inputs, outputs, gradients)

See docs/golden.md for the exact contents.  This script is a developer tool; CI
never runs it, the C++ tests only read the files it writes.

Usage (see docs/golden.md for the virtualenv):
    /work/venv-golden/bin/python tools/make_t5_golden.py            # generate + verify
    /work/venv-golden/bin/python tools/make_t5_golden.py --verify   # only re-check existing files
"""

import argparse
import math
import os
import sys

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DIR = os.path.join(REPO_ROOT, "test", "golden")

# Shapes of the golden batch.
B, S, T, P = 2, 7, 5, 3
IGNORE = -100

COMMON_CONFIG = dict(
    vocab_size=64,
    d_model=16,
    d_kv=4,
    num_heads=2,  # inner dim = d_kv * num_heads = 8 != d_model
    d_ff=32,
    num_layers=2,
    num_decoder_layers=2,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    layer_norm_epsilon=1e-6,
    dropout_rate=0.0,
    initializer_factor=1.0,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)

MODELS = {
    # name: (feed_forward_proj, tie_word_embeddings, seed)
    "t5_relu_tied": ("relu", True, 1234),
    "t5_gated_untied": ("gated-gelu", False, 5678),
}


def make_config(ff_proj, tied):
    cfg = T5Config(feed_forward_proj=ff_proj, tie_word_embeddings=tied, **COMMON_CONFIG)
    # Plain PyTorch attention (matmul + bias + mask + softmax); no fused kernels.
    cfg._attn_implementation = "eager"
    return cfg


@torch.no_grad()
def reinit_(model, seed):
    """Re-initialise every parameter so activations are O(1) and all parameters differ.

    Linear weights ([out, in]): N(0, 1/sqrt(in)).  Embedding table ``shared``: N(0, 1).
    Untied ``lm_head``: N(0, 1/sqrt(d_model)) (same rule as any Linear).
    relative_attention_bias ([num_buckets, num_heads]): N(0, 1).
    Layer-norm weights: U(0.5, 1.5) (not all ones, so a wrong norm weight shows up).
    Parameters are visited in named_parameters() order with one seeded generator.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("layer_norm.weight"):
            val = 0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64)
        elif name == "shared.weight" or name.endswith("relative_attention_bias.weight"):
            val = torch.randn(p.shape, generator=g, dtype=torch.float64)
        elif p.dim() == 2:
            val = torch.randn(p.shape, generator=g, dtype=torch.float64) / math.sqrt(p.shape[1])
        else:
            raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")
        p.copy_(val.to(p.dtype))


def make_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    V = COMMON_CONFIG["vocab_size"]
    # Ordinary tokens are drawn from [2, V) so that pad (0) and eos (1) appear only where intended.
    input_ids = torch.randint(2, V, (B, S), generator=g, dtype=torch.int64)
    input_ids[0, S - 1] = 1  # row 0: 6 tokens + eos, no padding
    input_ids[1, 4] = 1  # row 1: 4 tokens + eos + 2 pads (right padding)
    input_ids[1, 5:] = 0
    attention_mask = (torch.arange(S)[None, :] < torch.tensor([[S], [5]])).to(torch.int64)

    labels = torch.randint(2, V, (B, T), generator=g, dtype=torch.int64)
    labels[0, T - 1] = 1  # row 0: 4 tokens + eos
    labels[1, T - 2] = 1  # row 1: 3 tokens + eos + ignored
    labels[1, T - 1] = IGNORE
    decoder_input_ids = torch.zeros_like(labels)
    decoder_input_ids[:, 0] = COMMON_CONFIG["decoder_start_token_id"]
    decoder_input_ids[:, 1:] = labels[:, :-1]
    decoder_input_ids[decoder_input_ids == IGNORE] = COMMON_CONFIG["pad_token_id"]

    prefix = torch.randn(B, P, COMMON_CONFIG["d_model"], generator=g, dtype=torch.float32)
    return dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=decoder_input_ids,
        labels=labels,
        prefix=prefix,
    )


def _gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _bucket(rel, bidirectional, num_buckets, max_distance):
    """T5 relative-position bucket of one integer offset rel = key_pos - query_pos."""
    n = num_buckets
    ret = 0
    if bidirectional:
        n //= 2
        if rel > 0:
            ret += n
        r = abs(rel)
    else:
        r = max(-rel, 0)
    max_exact = n // 2
    if r < max_exact:
        return ret + r
    # HF evaluates this in float32; for the small offsets used here float64 gives the same integer.
    large = max_exact + int(math.log(r / max_exact) / math.log(max_distance / max_exact) * (n - max_exact))
    return ret + min(large, n - 1)


class RefT5:
    """Independent float64 re-implementation of the HF T5 forward pass (written from the maths,
    not from HF code paths).  Used (a) to cross-check the documented semantics against HF and
    (b) to produce the *_f64 reference tensors with genuine float64 arithmetic throughout."""

    def __init__(self, cfg, params):
        self.cfg = cfg
        self.W = params  # name -> float64 tensor (requires_grad as needed)

    def w(self, name):
        return self.W[name]

    def rms(self, x, name):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.w(name) * (x * torch.rsqrt(var + self.cfg.layer_norm_epsilon))

    def bias(self, table_name, lq, lk, bidirectional):
        c = self.cfg
        idx = torch.tensor([[_bucket(j - i, bidirectional, c.relative_attention_num_buckets,
                                     c.relative_attention_max_distance) for j in range(lk)] for i in range(lq)])
        return self.w(table_name)[idx].permute(2, 0, 1)  # [H, lq, lk]

    def attn(self, pre, xq, xkv, bias, allowed):
        """allowed: bool [B or 1, 1 or lq, lk] broadcastable to [B, lq, lk]."""
        c = self.cfg
        Bn, lq, _ = xq.shape
        lk = xkv.shape[1]
        H, dk = c.num_heads, c.d_kv
        q = (xq @ self.w(pre + "q.weight").T).view(Bn, lq, H, dk).transpose(1, 2)
        k = (xkv @ self.w(pre + "k.weight").T).view(Bn, lk, H, dk).transpose(1, 2)
        v = (xkv @ self.w(pre + "v.weight").T).view(Bn, lk, H, dk).transpose(1, 2)
        scores = q @ k.transpose(-1, -2)  # no 1/sqrt(d_kv) scaling in T5
        if bias is not None:
            scores = scores + bias[None]
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # [B, H, lq, dk]
        out = out.transpose(1, 2).reshape(Bn, lq, H * dk)
        return out @ self.w(pre + "o.weight").T

    def ffn(self, pre, x):
        if self.cfg.is_gated_act:
            h = _gelu_new(x @ self.w(pre + "wi_0.weight").T) * (x @ self.w(pre + "wi_1.weight").T)
        else:
            h = torch.relu(x @ self.w(pre + "wi.weight").T)
        return h @ self.w(pre + "wo.weight").T

    def forward(self, input_ids, attention_mask, dec_embeds, labels):
        c = self.cfg
        shared = self.w("shared.weight")
        Bn, Ls = input_ids.shape
        Lt = dec_embeds.shape[1]
        enc_allowed = (attention_mask != 0)[:, None, :]  # keys only; padded queries still computed
        h = shared[input_ids]
        bias = self.bias("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", Ls, Ls, True)
        for i in range(c.num_layers):
            p = f"encoder.block.{i}.layer."
            x = self.rms(h, p + "0.layer_norm.weight")
            h = h + self.attn(p + "0.SelfAttention.", x, x, bias, enc_allowed)
            h = h + self.ffn(p + "1.DenseReluDense.", self.rms(h, p + "1.layer_norm.weight"))
        enc = self.rms(h, "encoder.final_layer_norm.weight")

        causal = torch.tril(torch.ones(Lt, Lt, dtype=torch.bool))[None]
        h = dec_embeds
        bias = self.bias("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", Lt, Lt, False)
        for i in range(c.num_decoder_layers):
            p = f"decoder.block.{i}.layer."
            x = self.rms(h, p + "0.layer_norm.weight")
            h = h + self.attn(p + "0.SelfAttention.", x, x, bias, causal)
            x = self.rms(h, p + "1.layer_norm.weight")
            h = h + self.attn(p + "1.EncDecAttention.", x, enc, None, enc_allowed)
            h = h + self.ffn(p + "2.DenseReluDense.", self.rms(h, p + "2.layer_norm.weight"))
        h = self.rms(h, "decoder.final_layer_norm.weight")
        if c.tie_word_embeddings:
            logits = (h * c.d_model ** -0.5) @ shared.T
        else:
            logits = h @ self.w("lm_head.weight").T
        valid = labels != IGNORE
        logp = torch.log_softmax(logits, dim=-1)
        nll = -logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        loss = nll[valid].sum() / valid.sum()
        return enc, logits, loss


def run_ref_f64(model, io):
    """Plain + prefix case with RefT5 in float64; same output names as run_case."""
    params = {n: p.detach().double().clone().requires_grad_(True) for n, p in model.named_parameters()}
    ref = RefT5(model.config, params)
    out = {}
    shared = params["shared.weight"]
    enc, logits, loss = ref.forward(io["input_ids"], io["attention_mask"], shared[io["decoder_input_ids"]], io["labels"])
    loss.backward()
    out["encoder_last_hidden_state"] = enc.detach()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for n, p in params.items():
        out["grad." + n] = p.grad.detach().clone()
        p.requires_grad_(False)
    prefix = io["prefix"].double().clone().requires_grad_(True)
    dec = torch.cat([prefix, shared[io["decoder_input_ids"]]], dim=1)
    labels_ext = torch.cat([torch.full((B, P), IGNORE, dtype=torch.int64), io["labels"]], dim=1)
    _, logits_p, loss_p = ref.forward(io["input_ids"], io["attention_mask"], dec, labels_ext)
    loss_p.backward()
    out["prefix_logits"] = logits_p[:, P:, :].detach()
    out["prefix_loss"] = loss_p.detach().reshape(1)
    out["prefix_grad"] = prefix.grad.detach().clone()
    return out


def run_case(model, io, dtype):
    """Run the plain case and the prefix case; return dict of output tensors (in `dtype`)."""
    out = {}
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(True)

    # ---- plain case: loss + all parameter gradients
    res = model(
        input_ids=io["input_ids"],
        attention_mask=io["attention_mask"],
        decoder_input_ids=io["decoder_input_ids"],
        labels=io["labels"],
    )
    res.loss.backward()
    out["encoder_last_hidden_state"] = res.encoder_last_hidden_state.detach()
    out["logits"] = res.logits.detach()
    out["loss"] = res.loss.detach().reshape(1)
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.detach().clone()
    model.zero_grad(set_to_none=True)

    # ---- prefix case: weights frozen, gradient w.r.t. the prefix only
    for p in model.parameters():
        p.requires_grad_(False)
    prefix = io["prefix"].to(dtype).clone().requires_grad_(True)
    tok_emb = model.shared(io["decoder_input_ids"])  # [B, T, D]
    dec_embeds = torch.cat([prefix, tok_emb], dim=1)  # [B, P+T, D]
    labels_ext = torch.cat([torch.full((B, P), IGNORE, dtype=torch.int64), io["labels"]], dim=1)
    res_p = model(
        input_ids=io["input_ids"],
        attention_mask=io["attention_mask"],
        decoder_inputs_embeds=dec_embeds,
        labels=labels_ext,
    )
    res_p.loss.backward()
    out["prefix_logits"] = res_p.logits[:, P:, :].detach()
    out["prefix_loss"] = res_p.loss.detach().reshape(1)
    out["prefix_grad"] = prefix.grad.detach().clone()
    for p in model.parameters():
        p.requires_grad_(True)
    return out


def describe(name, ff_proj, tied):
    return {
        "format": "tensortape T5 golden v1",
        "model": name,
        "generator": "tools/make_t5_golden.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "safetensors_note": "model weights are in model.safetensors (save_pretrained); this file holds inputs/outputs/grads",
        "feed_forward_proj": ff_proj,
        "tie_word_embeddings": str(tied).lower(),
        "shapes": f"B={B} S={S} T={T} P={P} D={COMMON_CONFIG['d_model']} V={COMMON_CONFIG['vocab_size']}",
        "loss_shape": "loss and prefix_loss are F32 tensors of shape [1] (mean token cross-entropy over labels != -100)",
        "inputs": (
            "input_ids I64[B,S], row 1 right-padded with 0; attention_mask I64[B,S] (0 on pads); "
            "labels I64[B,T], labels[1,T-1] = -100; decoder_input_ids I64[B,T] = labels shifted right "
            "with decoder_start_token_id 0 (-100 -> 0); decoder attention mask not given (all ones, causal)"
        ),
        "outputs": (
            "encoder_last_hidden_state F32[B,S,D] (pad positions included, computed normally); "
            "logits F32[B,T,V]; loss F32[1]; grad.<param> F32 = d loss / d param for every name in "
            "model.named_parameters() (tied: shared.weight accumulates encoder-embed, decoder-embed and lm_head use)"
        ),
        "prefix_case": (
            "All weights frozen. prefix F32[B,P,D] (random). decoder_inputs_embeds = "
            "concat([prefix, shared(decoder_input_ids)], dim=1) of shape [B,P+T,D] (no scaling of the embeddings). "
            "Encoder inputs as above. Decoder attention mask all ones (causal only); the P prefix positions are "
            "ordinary decoder positions 0..P-1: they take part in causal self-attention and in the relative position "
            "bias, target token t sits at decoder position P+t. labels_ext = concat([-100]*P, labels). "
            "prefix_loss = HF loss with labels_ext (mean over the non-ignored target positions only). "
            "prefix_logits F32[B,T,V] = logits[:, P:P+T, :]. prefix_grad F32[B,P,D] = d prefix_loss / d prefix. "
            "d_model^-0.5 scaling before lm_head applies exactly as in the plain case (only if tied)."
        ),
        "f64": (
            "*_f64 tensors (F64): same weights (the f32 values cast to f64), same inputs and prefix, computed "
            "entirely in float64 by the independent re-implementation RefT5 in tools/make_t5_golden.py (HF cannot "
            "do a pure float64 pass: it computes the RMS-norm variance and the attention softmax in float32). "
            "RefT5 agrees with the HF float32 tensors to < 2e-5 relative (checked at generation)."
        ),
    }


def generate(name, ff_proj, tied, seed):
    torch.manual_seed(seed)
    cfg = make_config(ff_proj, tied)
    model = T5ForConditionalGeneration(cfg)
    reinit_(model, seed)
    model.eval()  # dropout is 0 anyway; gradients are still computed

    io = make_inputs(seed + 1)
    assert torch.equal(model._shift_right(io["labels"]), io["decoder_input_ids"])

    out32 = run_case(model, io, torch.float32)

    out64 = run_ref_f64(model, io)
    for k, v in out32.items():  # independent re-implementation must agree with HF
        rel = (v.double() - out64[k]).abs().max().item() / max(out64[k].abs().max().item(), 1e-30)
        assert rel < 2e-5, f"{name}: HF float32 vs reference float64 mismatch in {k}: rel {rel:.3e}"

    d = os.path.join(GOLDEN_DIR, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)

    tensors = {k: v.contiguous() for k, v in io.items()}
    tensors.update({k: v.contiguous() for k, v in out32.items()})
    for k, v in out64.items():
        if k.startswith("grad."):
            k64 = "grad_f64." + k[len("grad."):]
        else:
            k64 = k + "_f64"
        tensors[k64] = v.contiguous()
    meta = describe(name, ff_proj, tied)
    meta["seed_model"] = str(seed)
    meta["seed_inputs"] = str(seed + 1)
    save_file(tensors, os.path.join(d, "io.safetensors"), metadata=meta)

    # Report magnitudes (sanity: activations should be O(1)).
    print(f"[{name}] params={sum(p.numel() for p in model.parameters())} "
          f"enc_rms={out32['encoder_last_hidden_state'].pow(2).mean().sqrt():.3f} "
          f"logits_std={out32['logits'].std():.3f} loss={out32['loss'].item():.6f} "
          f"prefix_loss={out32['prefix_loss'].item():.6f} "
          f"|f32-f64| logits={(out32['logits'].double() - out64['logits']).abs().max():.2e}")


def load_io(d):
    with safe_open(os.path.join(d, "io.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def verify(name):
    """Reload with from_pretrained and recompute everything from the stored inputs."""
    d = os.path.join(GOLDEN_DIR, name)
    io, _ = load_io(d)
    model = T5ForConditionalGeneration.from_pretrained(d, attn_implementation="eager")
    model.eval()
    out = run_case(model, io, torch.float32)
    worst = 0.0
    for k, v in out.items():
        ref = io[k]
        assert ref.shape == v.shape and ref.dtype == v.dtype, (k, ref.shape, v.shape, ref.dtype, v.dtype)
        diff = (ref - v).abs().max().item()
        rel = diff / max(ref.abs().max().item(), 1e-30)
        worst = max(worst, rel)
        if rel > 1e-5:
            print(f"  [{name}] MISMATCH {k}: max abs diff {diff:.3e} (rel {rel:.3e})")
    grad_names = {k[len("grad."):] for k in io if k.startswith("grad.")}
    param_names = {n for n, _ in model.named_parameters()}
    assert grad_names == param_names, (grad_names ^ param_names)
    # f32 vs f64 agreement (loose, f32 round-off only)
    for k in ("encoder_last_hidden_state", "logits", "loss", "prefix_logits", "prefix_loss", "prefix_grad"):
        rel = (io[k].double() - io[k + "_f64"]).abs().max().item() / io[k + "_f64"].abs().max().item()
        assert rel < 1e-4, (k, rel)
    status = "OK" if worst <= 1e-5 else "FAILED"
    print(f"[{name}] verify with transformers {transformers.__version__}: {status} "
          f"(worst relative max-abs diff {worst:.2e})")
    return worst <= 1e-5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verify", action="store_true", help="only verify existing files")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    ok = True
    for name, (ff_proj, tied, seed) in MODELS.items():
        if not args.verify:
            generate(name, ff_proj, tied, seed)
        ok = verify(name) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
