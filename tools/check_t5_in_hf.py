#!/usr/bin/env python3
"""Loads a T5 checkpoint written by tensortape (examples/t5/t5_resave) in Hugging Face
transformers and checks that it reproduces the golden outputs of the checkpoint it came from.

    /work/venv-golden/bin/python tools/check_t5_in_hf.py OURS_DIR GOLDEN_DIR

Needs torch, transformers and safetensors (tools/requirements-golden.txt); CI never runs it.
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import T5ForConditionalGeneration


def main(ours: str, golden: str) -> int:
    model = T5ForConditionalGeneration.from_pretrained(ours).eval()
    io = load_file(f"{golden}/io.safetensors")
    with torch.no_grad():
        out = model(input_ids=io["input_ids"], attention_mask=io["attention_mask"],
                    decoder_input_ids=io["decoder_input_ids"], labels=io["labels"])
    worst = 0.0
    for name, value in [("logits", out.logits), ("loss", out.loss.reshape(1)),
                        ("encoder_last_hidden_state", out.encoder_last_hidden_state)]:
        expected = io[name]
        error = ((value - expected).abs().max() / expected.abs().max()).item()
        worst = max(worst, error)
        print(f"{name:28s} relative error {error:.3e}")
    ok = worst <= 1e-5
    print(f"{'OK' if ok else 'MISMATCH'}: {ours} loaded in transformers reproduces {golden}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
