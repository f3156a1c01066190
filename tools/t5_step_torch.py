#!/usr/bin/env python3
"""TS-1 / TS-2 in PyTorch eager on the GPU (or, with --device cpu, the CPU): the same T5 (Hugging
Face transformers modules), the same weights, batch and Adam settings as bench/cuda_bench.cpp,
which writes them with --t5_export=DIR. Checks its losses against tensortape's
(DIR/tensortape.json) before timing.

    python3 tools/t5_step_torch.py DIR [--json OUT.json] [--steps 20] [--repetitions 5] [--device cpu]

On the CPU it flushes subnormal floats to zero (--flush-denormal 0 keeps them), set before torch
starts its threads, which inherit the mode: t5_step_bench and editlab flush them too.

Each step: zero_grad, encoder, decoder (with the prefix prepended for TS-2), the tied head on
the target positions only (as tensortape computes it), cross-entropy, backward, Adam (torch's
default implementation for CUDA tensors). A step is timed from its start until loss.item()
returns, as cuda_bench times tensortape's. Reported: the median over repetitions of the mean
step time, and torch.cuda's peak allocated / reserved bytes over 3 steps after one warm-up step.
Needs torch, transformers and safetensors; CI never runs it.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import T5ForConditionalGeneration

MODES = ("TS1", "TS2_frozen", "TS2_all")


class Step:
    def __init__(self, directory, mode, settings, device):
        self.model = T5ForConditionalGeneration.from_pretrained(directory).to(device).train()
        ids = {k: v.to(device) for k, v in load_file(f"{directory}/batch_ids.safetensors").items()}
        self.input_ids, self.attention_mask = ids["input_ids"], ids["attention_mask"]
        self.decoder_input_ids, self.labels = ids["decoder_input_ids"], ids["labels"]
        self.prefix = None
        params = []
        if mode == "TS2_frozen":
            self.model.requires_grad_(False)
        else:
            params = list(self.model.parameters())
        if mode != "TS1":
            self.prefix = load_file(f"{directory}/batch_prefix.safetensors")["prefix"].to(device).requires_grad_(True)
            params.append(self.prefix)
        self.optimizer = torch.optim.Adam(params, lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]),
                                          eps=settings["eps"])
        config = self.model.config
        # transformers 5 names the tied-head scaling scale_decoder_outputs; 4.x ties it to tie_word_embeddings.
        scaled = getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
        self.head_scale = config.d_model ** -0.5 if scaled else 1.0

    def forward(self):
        encoded = self.model.encoder(input_ids=self.input_ids, attention_mask=self.attention_mask).last_hidden_state
        embeds = self.model.shared(self.decoder_input_ids)  # (B, T, D)
        if self.prefix is not None:
            embeds = torch.cat([self.prefix, embeds], dim=1)  # (B, P + T, D)
        hidden = self.model.decoder(inputs_embeds=embeds, encoder_hidden_states=encoded,
                                    encoder_attention_mask=self.attention_mask).last_hidden_state
        hidden = hidden[:, -self.labels.shape[1]:]  # target positions only
        logits = self.model.lm_head(hidden * self.head_scale)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.labels.reshape(-1))

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def loss(self):
        with torch.no_grad():
            return self.forward().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--steps", type=int, default=20, help="steps per repetition")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--flush-denormal", type=int, choices=(0, 1), default=1,
                        help="CPU: flush subnormal floats to zero (torch.set_flush_denormal), as t5_step_bench does "
                             "by default; Intel cores otherwise take microcode assists on them")
    args = parser.parse_args()

    ours = json.load(open(f"{args.directory}/tensortape.json"))
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    flushed = torch.set_flush_denormal(bool(args.flush_denormal)) and bool(args.flush_denormal)
    results = {"device": torch.cuda.get_device_name(device) if on_gpu else "cpu", "torch": torch.__version__,
               "threads": torch.get_num_threads(), "flush_denormal": flushed, "steps": {}}
    ok = True
    for mode in MODES:
        reference = ours["steps"][mode]
        # Agreement first: the loss before and after one step, and the prefix gradient's norm.
        check = Step(args.directory, mode, ours, device)
        before, step_loss = check.loss(), check.step()
        after = check.loss()
        grad_norm = check.prefix.grad.norm().item() if check.prefix is not None else 0.0
        rel = max(abs(before - reference["loss_before"]), abs(step_loss - reference["loss_before"]),
                  abs(after - reference["loss_after_one_step"])) / abs(reference["loss_before"])
        grad_rel = abs(grad_norm - reference["prefix_grad_norm"]) / max(reference["prefix_grad_norm"], 1e-30)
        agree = rel <= 1e-4 and grad_rel <= 1e-3
        ok = ok and agree
        print(f"{mode}: loss torch {before:.7f} tensortape {reference['loss_before']:.7f}; after one step "
              f"{after:.7f} vs {reference['loss_after_one_step']:.7f} (worst rel. {rel:.1e}); prefix grad norm "
              f"rel. {grad_rel:.1e} {'OK' if agree else 'DISAGREE'}", flush=True)
        del check
        if not agree:
            continue

        step = Step(args.directory, mode, ours, device)
        step.step()  # warm-up: kernels chosen, optimizer state allocated
        sync()
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(3):
            step.step()
        peak_allocated = torch.cuda.max_memory_allocated(device) if on_gpu else 0
        peak_reserved = torch.cuda.max_memory_reserved(device) if on_gpu else 0
        means = []
        for _ in range(args.repetitions):
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                step.step()  # ends with loss.item(), which waits for the GPU
            means.append(1e3 * (time.perf_counter() - start) / args.steps)
        results["steps"][mode] = {"ms_median": statistics.median(means), "ms_all": means,
                                  "peak_bytes_allocated": peak_allocated, "peak_bytes_reserved": peak_reserved,
                                  "loss_rel_diff": rel, "prefix_grad_norm_rel_diff": grad_rel}
        memory = (f"; peak {peak_allocated / 2**20:.1f} MiB allocated, {peak_reserved / 2**20:.1f} MiB reserved"
                  if on_gpu else "")
        print(f"{mode}: {statistics.median(means):.3f} ms/step (median of {args.repetitions} x {args.steps} steps)"
              f"{memory}", flush=True)
        del step
        if on_gpu:
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
