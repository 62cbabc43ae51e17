"""The independent side of the export checks (issue 44): loads what `cargo xtask export` wrote
with transformers, PEFT or transformers' GGUF reader, never with landermt's code, and writes the
logits (and a greedy continuation) of given token ids.

Usage: python bench/hf_check.py JOBS.json OUT.json   (the python of `bash bench/hf-venv.sh`)

JOBS.json is a list of jobs, each
  {"kind": "hf",   "model": DIR, "ids": [...], "greedy": N}     a merged folder (with its
                                                                modeling code, if any)
  {"kind": "peft", "model": BASE_DIR, "adapter": DIR, ...}     PeftModel on the base
  {"kind": "gguf", "model": DIR, "file": NAME, ...}             from_pretrained(DIR, gguf_file=NAME)
  {"kind": "quantized", "f32": FILE, "file": FILE, "type": "Q8_0"}
      gguf-py quantises every tensor of the f32 file; FILE's tensors of that type must be
      those bytes
OUT.json gets, per job, {"logits": [T*V floats], "vocab": V, "greedy": [N ids]}, or for
"quantized" {"checked": [names], "differ": [names]}.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def load(job):
    common = dict(torch_dtype=torch.float32, trust_remote_code=True, attn_implementation="eager")
    if job["kind"] == "hf":
        return AutoModelForCausalLM.from_pretrained(job["model"], **common)
    if job["kind"] == "peft":
        from peft import PeftModel
        base = AutoModelForCausalLM.from_pretrained(job["model"], **common)
        return PeftModel.from_pretrained(base, job["adapter"])
    if job["kind"] == "gguf":
        return AutoModelForCausalLM.from_pretrained(job["model"], gguf_file=job["file"], **common)
    raise ValueError(f"unknown job kind {job['kind']!r}")


def quantized(job):
    import gguf
    qtype = gguf.GGMLQuantizationType[job["type"]]
    f32 = {t.name: t for t in gguf.GGUFReader(job["f32"]).tensors}
    checked, differ = [], []
    for t in gguf.GGUFReader(job["file"]).tensors:
        if t.tensor_type != qtype:
            continue
        want = gguf.quants.quantize(f32[t.name].data.reshape(tuple(reversed([int(d) for d in t.shape]))), qtype)
        checked.append(t.name)
        if want.tobytes() != t.data.tobytes():
            differ.append(t.name)
    return {"checked": checked, "differ": differ}


@torch.no_grad()
def run(job):
    if job["kind"] == "quantized":
        return quantized(job)
    model = load(job).eval()
    ids = torch.tensor([job["ids"]], dtype=torch.long)
    logits = model(input_ids=ids).logits[0].float()
    greedy = []
    if job.get("greedy", 0) > 0:
        # Plain greedy over the full sequence each step: no cache, no stopping at EOS.
        seq = ids
        for _ in range(job["greedy"]):
            nxt = model(input_ids=seq).logits[0, -1].argmax().item()
            greedy.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return {"logits": logits.reshape(-1).tolist(), "vocab": logits.shape[-1], "greedy": greedy}


def main():
    jobs = json.load(open(sys.argv[1]))
    out = [run(job) for job in jobs]
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
