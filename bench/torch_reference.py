#!/usr/bin/env python3
"""The PyTorch side of `cargo xtask bench --vs-torch`.

Runs one workload of the benchmark with Hugging Face transformers (and PEFT for LoRA) on the
inputs `cargo xtask bench` wrote (`target/bench/inputs-{model}.json`: the model's dimensions,
the token ids, the LANDeRMT update set and the sizes), and prints one JSON line in the same
form as our side: count, unit, seconds, nominal FLOPs, peak resident memory.

The model is built from the same dimensions with random weights (transformers' own init):
dense f32 kernels do the same work whatever the values, and the decoding workloads generate a
fixed number of tokens (min_new_tokens = max_new_tokens), so no run ends early.

    pip install torch transformers peft      # CPU wheels are enough
    python bench/torch_reference.py --inputs target/bench/inputs-gemma.json --workload prefill

`--device cuda` runs it on the GPU (what `cargo xtask device-check` compares the GPU backends
with); the timings then wait for the GPU, and the peak memory is the GPU's.
"""

import argparse
import json
import resource
import time

import torch

DEVICE = torch.device("cpu")


def build(spec, train):
    from transformers import AutoModelForCausalLM

    common = dict(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_kv_heads"],
        head_dim=spec["head_dim"],
        tie_word_embeddings=spec["tie_word_embeddings"],
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if spec["architecture"] == "gemma3":
        from transformers import Gemma3TextConfig

        cfg = Gemma3TextConfig(sliding_window=spec["sliding_window"] or 512, query_pre_attn_scalar=spec["head_dim"], **common)
    elif spec["architecture"] == "llama":
        from transformers import LlamaConfig

        cfg = LlamaConfig(hidden_act="silu", **common)
    else:
        raise SystemExit(f"torch_reference.py: no PyTorch counterpart for architecture {spec['architecture']!r}")
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=torch.float32)
    model.train(train)
    return model.to(DEVICE)


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


# Nominal FLOPs: the formulas of crates/landermt-bench/src/bench.rs (`Flops`), so both sides' fractions of
# GEMM peak compare like their rates.
class Flops:
    def __init__(self, s):
        self.s = s
        self.q = s["num_heads"] * s["head_dim"]
        kv = s["num_kv_heads"] * s["head_dim"]
        h, f = s["hidden_size"], s["intermediate_size"]
        self.block_w = h * (self.q + 2 * kv) + self.q * h + 3 * h * f
        self.head = h * s["vocab_size"]

    def blocks(self, tokens, context):
        return tokens * self.s["num_layers"] * (2.0 * self.block_w + 4.0 * context * self.q)

    def prefill(self, sh):
        t = sh["seq_len"]
        return self.blocks(sh["batch"] * t, (t + 1) / 2) + sh["batch"] * 2.0 * self.head

    def decode(self, sh, rows):
        p, n = sh["prompt_len"], sh["new_tokens"]
        prompt = self.blocks(rows * p, (p + 1) / 2) + rows * 2.0 * self.head
        return prompt + self.blocks(rows * (n - 1), p + n / 2) + rows * (n - 1) * 2.0 * self.head

    def train(self, sh, full, trainable, lowest):
        tokens, targets = sh["batch"] * sh["seq_len"], sh["batch"] * sh["target_len"]
        ctx = (sh["seq_len"] + 1) / 2
        fwd = self.blocks(tokens, ctx) + targets * 2.0 * self.head
        if full:
            return 3.0 * fwd
        layers = self.s["num_layers"]
        share = (layers - lowest) / layers
        return fwd + share * self.blocks(tokens, ctx) + targets * 2.0 * self.head + 2.0 * tokens * trainable

    def probe(self, sh):
        t = sh["sentence_len"]
        return self.blocks(sh["probe_sentences"] * t, (t + 1) / 2)

    def translate(self, prompt_tokens, generated):
        # Every prompt and generated token through the blocks and the head; attention left out.
        return (prompt_tokens + generated) * (self.s["num_layers"] * 2.0 * self.block_w + 2.0 * self.head)

    def score(self, sh):
        t = sh["sentence_len"]
        tokens = sh["score_sentences"] * t
        return 2.0 * (self.blocks(tokens, (t + 1) / 2) + tokens * 2.0 * self.head)


def gemm(inp):
    n = inp["shapes"]["gemm_n"]
    a, b = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(5))
    flops = 2.0 * n**3
    return dict(count=flops / 1e9, unit="GFLOP", seconds=best, flops=flops, note=f"{n}×{n}·{n}×{n}, best of 5")


def prefill(inp):
    sh, model = inp["shapes"], build(inp["model"], train=False)
    ids = torch.tensor(inp["train_ids"], device=DEVICE)

    def run():
        with torch.inference_mode():
            model(input_ids=ids, use_cache=True, logits_to_keep=1)

    run()
    runs = sh["prefill_runs"]
    seconds = timed(lambda: [run() for _ in range(runs)])
    return dict(count=runs * ids.numel(), unit="tokens", seconds=seconds, flops=runs * Flops(inp["model"]).prefill(sh))


def decode(rows):
    def workload(inp):
        sh, model = inp["shapes"], build(inp["model"], train=False)
        ids = torch.tensor(inp["prompt_ids"][:rows], device=DEVICE)
        n = sh["new_tokens"]

        def run(k):
            with torch.inference_mode():
                return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=k, min_new_tokens=k, do_sample=False, use_cache=True, pad_token_id=0)

        run(2)
        sync()
        start = time.perf_counter()
        out = run(n)
        sync()
        seconds = time.perf_counter() - start
        tokens = (out.shape[1] - ids.shape[1]) * rows
        return dict(count=tokens, unit="tokens", seconds=seconds, flops=Flops(inp["model"]).decode(sh, rows), note="includes the prompt's prefill")

    return workload


def landermt_masks(model, units):
    """requires_grad on the selected layers' q, k, v, o and FFN weights, with gradient masks
    that keep only the update set's rows (q, k, v, o outputs; gate and up outputs) and columns
    (down inputs): what a PyTorch user would write for selective fine-tuning."""
    layers = model.model.layers
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = 0
    for u in units:
        block = layers[u["layer"]]
        ffn = sorted(u["general"] + u["specific"])  # the FFN units that train: G ∪ S
        attn, mlp = block.self_attn, block.mlp
        for lin, rows in [(attn.q_proj, u["q"]), (attn.k_proj, u["k"]), (attn.v_proj, u["v"]), (attn.o_proj, u["o"]), (mlp.gate_proj, ffn), (mlp.up_proj, ffn)]:
            mask = torch.zeros_like(lin.weight)
            mask[rows, :] = 1
            lin.weight.requires_grad_(True)
            lin.weight.register_hook(lambda g, m=mask: g * m)
            trainable += int(mask.sum())
        mask = torch.zeros_like(mlp.down_proj.weight)
        mask[:, ffn] = 1
        mlp.down_proj.weight.requires_grad_(True)
        mlp.down_proj.weight.register_hook(lambda g, m=mask: g * m)
        trainable += int(mask.sum())
    return trainable


def train(method):
    def workload(inp):
        sh, spec = inp["shapes"], inp["model"]
        model = build(spec, train=True)
        flops = Flops(spec)
        lowest = 0
        if method == "full":
            trainable = sum(p.numel() for p in model.parameters())
        elif method == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=sh["lora_rank"], lora_alpha=2 * sh["lora_rank"], lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        else:
            trainable = landermt_masks(model, inp["units"])
            lowest = min(u["layer"] for u in inp["units"])
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, eps=1e-8)
        ids = torch.tensor(inp["train_ids"], device=DEVICE)
        labels = ids.clone()
        labels[:, : sh["seq_len"] - sh["target_len"]] = -100  # loss on the target only

        def step():
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)

        step()
        steps = sh["train_steps"]
        seconds = timed(lambda: [step() for _ in range(steps)])
        return dict(count=steps * ids.numel(), unit="tokens", seconds=seconds, flops=steps * flops.train(sh, method == "full", trainable, lowest), note=f"{trainable} trainable parameters")

    return workload


def probe(inp):
    sh, model = inp["shapes"], build(inp["model"], train=False)
    ids = torch.tensor(inp["sentences"], device=DEVICE)
    b = sh["batch"]

    def run(x):
        with torch.inference_mode():
            hs = model.model(input_ids=x, output_hidden_states=True).hidden_states
            return [h.mean(dim=(1, 2)).tolist() for h in hs[1:]]

    run(ids[:b])
    seconds = timed(lambda: [run(ids[i : i + b]) for i in range(0, len(ids), b)])
    return dict(count=len(ids), unit="sentences", seconds=seconds, flops=Flops(inp["model"]).probe(sh), note=f"batch {b}")


def score(inp):
    """Taylor awareness: activations at q, k, v, o, the FFN's intermediate units and its output,
    their gradients of the summed per-sentence losses, and the sums of |g·h| (token mean per
    sentence) and |g| per unit."""
    sh, model = inp["shapes"], build(inp["model"], train=False)
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.tensor(inp["sentences"][: sh["score_sentences"]], device=DEVICE)
    b = sh["batch"]
    captured = []

    def keep(_m, _args, out):
        out.retain_grad()
        captured.append(out)

    def keep_input(_m, args):
        args[0].retain_grad()
        captured.append(args[0])

    for block in model.model.layers:
        for lin in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj, block.self_attn.o_proj, block.mlp.down_proj):
            lin.register_forward_hook(keep)
        block.mlp.down_proj.register_forward_pre_hook(keep_input)
    s_sum, g_sum = {}, {}

    def run(x):
        captured.clear()
        embeds = model.get_input_embeddings()(x).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        nll.view(x.shape[0], -1).mean(dim=1).sum().backward()
        t = x.shape[1]
        for k, h in enumerate(captured):
            g = h.grad
            s_sum[k] = s_sum.get(k, 0) + (g * h).abs().sum(dim=(0, 1)).double() / t
            g_sum[k] = g_sum.get(k, 0) + g.abs().sum(dim=(0, 1)).double()

    run(ids[:b])
    s_sum.clear()
    g_sum.clear()
    seconds = timed(lambda: [run(ids[i : i + b]) for i in range(0, len(ids), b)])
    assert len(s_sum) == 6 * len(model.model.layers)
    return dict(count=len(ids), unit="sentences", seconds=seconds, flops=Flops(inp["model"]).score(sh), note=f"batch {b}")


def translate(inp):
    """100 FLORES lines en→fr with the eval stage's prompts (given as text in the inputs), the
    real model loaded from its GGUF, greedy with left padding, batches in our order (sorted by
    prompt length), stopped per row at EOS or a newline, cut at the first newline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

    tr, path = inp["translate"], inp["translate"]["model_file"]
    model_dir, model_file = path.rsplit("/", 1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    eos = model.generation_config.eos_token_id
    eos_ids = sorted({eos} if isinstance(eos, int) else set(eos or [])) or [tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    newline = torch.zeros(model.get_output_embeddings().weight.shape[0], dtype=torch.bool)
    newline[[i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]] = True

    class StopAtNewline(StoppingCriteria):
        def __init__(self, prompt_len):
            self.prompt_len = prompt_len

        def __call__(self, input_ids, scores, **kwargs):
            if input_ids.shape[1] <= self.prompt_len:
                return torch.zeros(input_ids.shape[0], dtype=torch.bool)
            return newline[input_ids[:, -1]]

    prompts = tr["prompts"]
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # stable, like our sort_by_key
    hyps, generated = [""] * len(prompts), 0

    def run(rows):
        nonlocal generated
        enc = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True)
        width = enc["input_ids"].shape[1]
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=tr["max_new_tokens"], eos_token_id=eos_ids,
                                 pad_token_id=pad, stopping_criteria=StoppingCriteriaList([StopAtNewline(width)]),
                                 temperature=None, top_p=None, top_k=None)
        for r, i in enumerate(rows):
            gen = out[r, width:].tolist()
            stop = next((k for k, t in enumerate(gen) if t in eos_ids or newline[t]), len(gen) - 1)
            generated += stop + 1
            hyps[i] = tokenizer.decode(gen[: stop + 1], skip_special_tokens=True).split("\n", 1)[0].strip()

    run(order[:2])
    generated = 0
    b = tr["batch"]
    seconds = timed(lambda: [run(order[k : k + b]) for k in range(0, len(order), b)])
    return dict(count=len(prompts), unit="sentences", seconds=seconds, flops=Flops(inp["model"]).translate(sum(lengths), generated),
                note=f"batch {b}, {generated} tokens generated", hypotheses=hyps)


WORKLOADS = {
    "gemm": gemm,
    "prefill": prefill,
    "decode-b1": decode(1),
    "decode-b8": decode(8),
    "train-landermt": train("landermt"),
    "train-lora": train("lora"),
    "train-full": train("full"),
    "probe": probe,
    "score": score,
    "translate": translate,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", required=True, help="inputs-{model}.json written by cargo xtask bench")
    ap.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"], help="bf16: the workload under torch.autocast(bfloat16)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.inputs) as f:
        inp = json.load(f)
    if args.dtype == "bf16":
        # Weights stay f32 and autocast casts them per op, products in bf16 with f32 sums:
        # how PyTorch users run bf16 on a CPU.
        with torch.autocast(device_type=DEVICE.type, dtype=torch.bfloat16):
            result = WORKLOADS[args.workload](inp)
        result["note"] = "bf16 autocast; " + result.get("note", "")
    else:
        result = WORKLOADS[args.workload](inp)
    result.setdefault("note", "")
    result["note"] = f"torch {torch.__version__}; " + result["note"]
    result.update(workload=args.workload, side="torch", peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if DEVICE.type == "cuda":
        # The caching allocator's high-water reserve, as our side reads cubecl's reserved pools
        # (Measured::peak_device_mb); what tensors held at most goes in the note.
        allocated = torch.cuda.max_memory_allocated() / 2**20
        result.update(side="torch-cuda", peak_device_mb=torch.cuda.max_memory_reserved() / 2**20, note=result["note"] + f"; at most {allocated:.0} MiB allocated")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
