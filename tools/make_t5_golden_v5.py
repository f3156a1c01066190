#!/usr/bin/env python3
"""Golden checkpoints as transformers 5.x writes them (issue: T5 configs from 4.x and 5.x load
to the same numbers).

For each 4.x golden model under test/golden/<name>/ (tools/make_t5_golden.py), loads it with
transformers 5.x, saves it with 5.x's save_pretrained into test/golden/<name>_v5/ (config.json,
model.safetensors: 5.x writes tie_word_embeddings = true for every T5, scale_decoder_outputs as
its own key, and keeps an untied model's lm_head.weight), then loads that folder again with 5.x
and writes io.safetensors: the 4.x golden inputs and 5.x's encoder output, logits and loss on
them. The C++ test loads <name>_v5 and must reproduce both 5.x's outputs and the 4.x golden
logits. Developer tool; CI never runs it (docs/golden.md).

    python3 -m venv /work/venv5
    /work/venv5/bin/pip install torch==2.15.0 transformers==5.24.0 safetensors==0.8.0 numpy
    /work/venv5/bin/python tools/make_t5_golden_v5.py
"""

import json
import os
import shutil

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import T5ForConditionalGeneration

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "golden")
INPUTS = ["input_ids", "attention_mask", "decoder_input_ids", "labels"]


def make(name):
    assert transformers.__version__.startswith("5."), f"needs transformers 5.x, found {transformers.__version__}"
    source, target = os.path.join(GOLDEN_DIR, name), os.path.join(GOLDEN_DIR, name + "_v5")
    shutil.rmtree(target, ignore_errors=True)
    T5ForConditionalGeneration.from_pretrained(source, attn_implementation="eager").save_pretrained(target)
    for extra in os.listdir(target):  # keep what the loader reads
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(target, extra))
    model = T5ForConditionalGeneration.from_pretrained(target, attn_implementation="eager").eval()
    golden = load_file(os.path.join(source, "io.safetensors"))
    with torch.no_grad():
        out = model(**{k: golden[k] for k in INPUTS})
    tensors = {k: golden[k] for k in INPUTS}
    tensors["encoder_last_hidden_state"] = out.encoder_last_hidden_state.contiguous()
    tensors["logits"] = out.logits.contiguous()
    tensors["loss"] = out.loss.reshape(1)
    difference = (out.logits - golden["logits"]).abs().max().item() / golden["logits"].abs().max().item()
    config = json.load(open(os.path.join(target, "config.json")))
    meta = {
        "format": "tensortape T5 golden v5",
        "model": name + "_v5",
        "generator": "tools/make_t5_golden_v5.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "config_tie_word_embeddings": str(config.get("tie_word_embeddings")),
        "config_scale_decoder_outputs": str(config.get("scale_decoder_outputs")),
        "lm_head_tied_in_5x": str(model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()),
        "logits_relative_difference_to_4x_golden": f"{difference:.3e}",
    }
    save_file(tensors, os.path.join(target, "io.safetensors"), metadata=meta)
    print(name + "_v5", json.dumps(meta))
    assert difference < 1e-6, "5.x does not reproduce the 4.x golden logits"


if __name__ == "__main__":
    for name in ("t5_relu_tied", "t5_gated_untied"):
        make(name)
