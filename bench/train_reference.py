#!/usr/bin/env python3
"""The PyTorch side of the trainer check (issue 13): our training protocol in transformers + PEFT.

Reads one of our run configs (`[run] directions`, `[model]`, `[prompt]`, `[train]` with its
`[train.methods.M]` overrides) and trains method M (`full` or `lora`) the way
`cargo xtask train --config F --method M` does (crates/landermt-train, crates/landermt-pipeline/src/stages/train.rs):

* data: per direction, the first `train.pairs` pairs of `train.data` (TSV `a<TAB>b`, the columns
  swapped for the reverse direction; blank lines skipped), each made an example; dev: the first
  `train.dev_pairs` of `train.dev` per direction, always with `[prompt] template`;
* an example: the prompt is the filled template before `{tgt}` with trailing spaces and tabs
  removed, the target the rest; ids = tokens(prompt) with the tokenizer's usual special tokens
  (BOS), then the tokens of (prompt + target) after the prompt's (the target tokenized alone if
  the prompt's tokens are not a prefix), then EOS (the model's first EOS id); an example whose
  target + EOS + 1 exceeds `max_len` is dropped, a long prompt is cut from its start;
* the plan: per epoch, each direction's examples sorted by the SplitMix64 key
  `mix(seed ^ mix(epoch << 32 | d << 24) ^ i)` (`trainer::mix`/`trainer::plan`), cut into
  micro-batches of `batch_size`; directions take turns, batch r of every direction in round r;
  `grad_accum` micro-batches make one optimizer step;
* the loss: next-token cross-entropy averaged over all target+EOS tokens of a micro-batch
  (pooled over its sentences, not per sentence), left-padded, positions counting real tokens
  only; with accumulation each micro-batch's loss is divided by the number of micro-batches of
  the step, and the step's logged loss is the sum of those;
* AdamW: betas (0.9, 0.999), eps 1e-8, decoupled weight decay `weight_decay` on every trainable
  tensor (norms, embeddings and LoRA A/B included), no gradient clipping; the learning rate of
  step s (0-based) of T is lr·(s+1)/W during W warm-up steps, then constant, linear
  lr·(1 − d) or cosine lr·(1 + cos πd)/2 with d = (s − W)/max(T − W, 1);
* LoRA: W + B·A·alpha/r on the `lora_targets` maps of every layer (q k v o gate up down =
  q_proj … down_proj), B = 0, no dropout; A is by default our initialisation exactly
  (`added::uniform`: uniform in ±1/√in from SplitMix64 of the seed), so both sides start from the
  same weights; `--lora-init peft` keeps PEFT's own Kaiming-uniform draw (same bound);
* validation: the dev examples in order, in chunks of `batch_size` (a chunk may straddle two
  directions), each chunk's pooled token mean weighted by its number of sentences; measured
  every `eval_every` steps before the last, and after the last step.

Writes to --out: `train.json` (keys as ours: steps, tokens, seconds, tokens_per_second,
train_loss, validation_loss, settings, …, plus the versions), `loss.csv` (step, lr, train_loss,
validation_loss where measured), and `batches.json` (per micro-batch: direction, example
indices in the direction's example list, the 0-based pair indices before examples too long for
`max_len` were dropped, and the 1-based lines of the data file). With --save DIR, the trained
model (LoRA merged into the weights) as a Hugging Face folder, which our side loads as a plain
model, and `eval.toml` in --out: the run's `[prompt]` and `[eval]` with `[model] path = DIR` and
`methods = ["none"]`. `cargo xtask eval --config OUT/eval.toml` decodes it with our decoder, so
both sides are decoded and scored by the same code; compare the hypothesis files with
`sacrebleu REF -i OURS THEIRS --paired-bs`.

    .venv/bin/python bench/train_reference.py --config configs/en-fr-torch-check.toml \\
        --method lora --out runs/en-fr-torch-check/torch/lora --save runs/en-fr-torch-check/torch/lora/hf
    .venv/bin/python bench/compare_training.py runs/en-fr-torch-check/train/lora/train.json \\
        runs/en-fr-torch-check/torch/lora/train.json
    cargo xtask eval --config runs/en-fr-torch-check/torch/lora/eval.toml

Run it from the repository root (the config's relative paths are read from there).
"""

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from landermt_common import DEFAULT_TEMPLATE, LANGUAGES, MIXED_TEMPLATES, cached_model, split_template  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MASK64 = (1 << 64) - 1

TRAIN_DEFAULTS = {
    "method": "landermt",
    "pairs": 500,
    "data": {"kind": "tsv", "path": "data/corpus/train.en-fr.tsv", "src_lang": "en", "tgt_lang": "fr"},
    "dev_pairs": 50,
    "dev": {"kind": "tsv", "path": "data/corpus/dev.en-fr.tsv", "src_lang": "en", "tgt_lang": "fr"},
    "lr": 5e-5,
    "weight_decay": 0.01,
    "batch_size": 8,
    "grad_accum": 10,
    "epochs": 1,
    "warmup_steps": 0,
    "schedule": "linear",
    "max_len": 256,
    "seed": 1,
    "eval_every": 0,
    "checkpoint_every": 10,
    "lora_rank": 8,
    "lora_alpha": 16.0,
    "lora_targets": ["q", "k", "v", "o"],
    "adapter_size": 64,
}
SETTINGS_KEYS = ["lr", "weight_decay", "batch_size", "grad_accum", "epochs", "warmup_steps", "schedule", "max_len", "seed", "eval_every", "checkpoint_every"]

# Our target names -> transformers module names, and our `Target as usize` (the LoRA init stream).
TARGETS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
TARGET_INDEX = {t: i for i, t in enumerate(TARGETS)}

# Known model names -> file in the model cache (crates/landermt-model/src/cache.rs).



# ---------------------------------------------------------------- the deterministic parts


def mix(x: int) -> int:
    """SplitMix64's finaliser, as `landermt_train::trainer::mix`."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def mix_array(x: np.ndarray) -> np.ndarray:
    """`mix` on a uint64 array (numpy's uint64 arithmetic wraps, as Rust's wrapping ops)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def plan(per_direction: list[int], batch_size: int, epochs: int, seed: int) -> list[tuple[int, list[int]]]:
    """The micro-batches of the run, as `trainer::plan`: (direction index, example indices)."""
    out = []
    for epoch in range(epochs):
        batches = []
        for d, n in enumerate(per_direction):
            salt = mix(((epoch << 32) | (d << 24)) & MASK64)
            order = sorted(range(n), key=lambda i: mix(seed ^ salt ^ i))  # stable, as sort_by_key
            step = max(batch_size, 1)
            batches.append([order[k : k + step] for k in range(0, n, step)])
        for r in range(max((len(b) for b in batches), default=0)):
            for d, b in enumerate(batches):
                if r < len(b):
                    out.append((d, b[r]))
    return out


def lr_at(s: dict, step: int, total: int) -> float:
    """`Settings::lr_at`: the learning rate of optimizer step `step` (0-based) of `total`."""
    lr, warm = s["lr"], s["warmup_steps"]
    if step < warm:
        return lr * (step + 1) / warm
    done = (step - warm) / max(total - warm, 1)
    return {"constant": lr, "linear": lr * (1.0 - done), "cosine": lr * 0.5 * (1.0 + math.cos(math.pi * done))}[s["schedule"]]


def lora_a(seed: int, layer: int, target: str, d_in: int, rank: int) -> np.ndarray:
    """Our LoRA A (`added::Lora::new`), `[d_in, rank]` in f32: uniform(seed, layer·16 + target)
    scaled to ±1/√d_in."""
    stream = layer * 16 + TARGET_INDEX[target]
    i = np.arange(d_in * rank, dtype=np.uint64)
    h = mix_array(np.uint64(seed) ^ np.uint64(mix(stream)) ^ i)
    u = (h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
    bound = np.float32(1.0) / np.sqrt(np.float32(d_in))
    return ((np.float32(2.0) * u - np.float32(1.0)) * bound).astype(np.float32).reshape(d_in, rank)


# ---------------------------------------------------------------- config, data, prompts


def load_config(path: Path, method: str, overrides: list[str]) -> dict:
    """The run config with `[train]` defaults filled in and `[train.methods.{method}]` applied
    (as `TrainSection::for_method`); `overrides` are `key=TOML value` over the result."""
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    train = dict(TRAIN_DEFAULTS)
    train.update({k: v for k, v in cfg.get("train", {}).items() if k != "methods"})
    for k, v in cfg.get("train", {}).get("methods", {}).get(method, {}).items():
        if k not in TRAIN_DEFAULTS or k == "method":
            raise SystemExit(f"{path}: [train.methods.{method}] {k}: not a [train] key a method can override")
        train[k] = v
    for o in overrides:
        key, _, value = o.partition("=")
        if key not in TRAIN_DEFAULTS:
            raise SystemExit(f"--set {o}: `{key}` is not a [train] key")
        train[key] = tomllib.loads(f"v = {value}")["v"]
    train["method"] = method
    train["lora_alpha"] = float(train["lora_alpha"])
    cfg["train"] = train
    prompt = cfg.get("prompt", {})
    cfg["prompt"] = {"template": prompt.get("template", DEFAULT_TEMPLATE), "train": prompt.get("train", "single")}
    return cfg


def model_path(cfg: dict) -> Path:
    m = cfg["model"]
    return Path(m["path"]) if "path" in m else cached_model(m["name"])


def read_lines(path: Path) -> list[str]:
    """Rust's `str::lines` with a trailing `\\r` removed (not Python's splitlines, which also
    splits at \\x0b, \\x1c, U+2028, …)."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def read_parallel(source: dict, direction: tuple[str, str]) -> list[tuple[str, str, int]]:
    """(src, tgt, 1-based line) of `direction`, as `landermt_data::read_parallel`."""
    s, t = direction
    kind = source["kind"]
    if kind == "corpus":
        for a, b in [(s, t), (t, s)]:
            p = Path(source["dir"]) / f"{source['split']}.{a}-{b}.tsv"
            if p.is_file():
                return read_parallel({"kind": "tsv", "path": p, "src_lang": a, "tgt_lang": b}, direction)
        raise SystemExit(f"{source['dir']}: no {source['split']}.{s}-{t}.tsv or {source['split']}.{t}-{s}.tsv")
    if kind == "tsv":
        cols = (source["src_lang"], source["tgt_lang"])
        if cols not in [(s, t), (t, s)]:
            raise SystemExit(f"{source['path']}: holds {cols[0]}-{cols[1]} pairs, not {s}-{t}")
        swap = cols == (t, s)
        out = []
        for i, line in enumerate(read_lines(source["path"])):
            if not line.strip():
                continue
            if "\t" not in line:
                raise SystemExit(f"{source['path']}:{i + 1}: no tab between source and target")
            a, b = line.split("\t", 1)
            out.append((b, a, i + 1) if swap else (a, b, i + 1))
        return out
    if kind == "flores":
        first, last = source["first"], source["last"]
        src = read_lines(Path(source["dir"]) / f"{LANGUAGES[s][1]}.devtest")[first - 1 : last]
        tgt = read_lines(Path(source["dir"]) / f"{LANGUAGES[t][1]}.devtest")[first - 1 : last]
        return [(a, b, first + k) for k, (a, b) in enumerate(zip(src, tgt))]
    if kind == "files":
        return [(a, b, k + 1) for k, (a, b) in enumerate(zip(read_lines(source["src"]), read_lines(source["tgt"])))]
    raise SystemExit(f"data kind {kind!r} is not supported here")


class Tokenizer:
    """The ids our side gets: `tokenizer.json` through the `tokenizers` library (the same Rust
    crate as ours), or, for a GGUF file, transformers' rebuilt tokenizer (the one our
    GGUF tokenizer is built to equal; tests/fixtures/gemma3-270m checks prompt ids)."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            from tokenizers import Tokenizer as T

            self.inner = T.from_file(str(path / "tokenizer.json"))
            self.hf = None
        else:
            from transformers import AutoTokenizer

            self.hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)

    def encode(self, text: str, special: bool = True) -> list[int]:
        if self.hf is None:
            return self.inner.encode(text, add_special_tokens=special).ids
        return self.hf(text, add_special_tokens=special)["input_ids"]

    def save(self, out: Path):
        if self.hf is None:
            for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
                if (self.path / name).is_file():
                    shutil.copy(self.path / name, out / name)
        else:
            self.hf.save_pretrained(str(out))


def eos_id(path: Path) -> int:
    """The model's first EOS id, as `ModelConfig::eos_token_ids[0]` (0 if none)."""
    if path.is_dir():
        e = json.loads((path / "config.json").read_text()).get("eos_token_id")
        e = e if isinstance(e, list) else [e] if e is not None else []
        return e[0] if e else 0
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields.get("tokenizer.ggml.eos_token_id")
    return int(field.parts[field.data[0]][0]) if field is not None else 0


def example(tok: Tokenizer, eos: int, direction, src: str, tgt: str, template: str, max_len: int):
    """`landermt_train::example`: (ids, target_len), or None when the target does not fit."""
    prompt_text, target_text = split_template(template, direction, src, tgt)
    prompt = tok.encode(prompt_text)
    whole = tok.encode(prompt_text + target_text)
    target = whole[len(prompt) :] if whole[: len(prompt)] == prompt else tok.encode(target_text, special=False)
    target = target + [eos]
    if len(target) + 1 > max_len:
        return None
    if len(prompt) + len(target) > max_len:
        prompt = prompt[len(prompt) + len(target) - max_len :]
    return prompt + target, len(target)


def template_for(cfg: dict, seed: int, d: int, k: int) -> str:
    """`data::template`: the single template, or one of the mixed set by seed and position."""
    if cfg["prompt"]["train"] == "single":
        return cfg["prompt"]["template"]
    return MIXED_TEMPLATES[mix(seed ^ ((d << 32) & MASK64) ^ k) % len(MIXED_TEMPLATES)]


# ---------------------------------------------------------------- model and loss


def load_model(path: Path, attn: str):
    from transformers import AutoModelForCausalLM

    kw = dict(dtype=torch.float32, attn_implementation=attn)
    if path.is_dir():
        return AutoModelForCausalLM.from_pretrained(str(path), **kw)
    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, **kw)


def parts(model):
    """(decoder stack, LM head, final logit softcap) of a causal LM, PEFT-wrapped or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    core = base.model
    if hasattr(core, "language_model"):  # a multimodal wrapper around the text model
        core = core.language_model
    cap = getattr(base.config.get_text_config(), "final_logit_softcapping", None)
    return core, base.get_output_embeddings(), cap


def batch_loss(model, examples: list[tuple[list[int], int]], pad: int) -> torch.Tensor:
    """Mean cross-entropy over the target+EOS tokens of a left-padded batch (`loss::target_loss`):
    logits only where a target token is predicted; positions count real tokens (padding gets 0)."""
    core, head, cap = parts(model)
    t = max(len(ids) for ids, _ in examples)
    ids = torch.tensor([[pad] * (t - len(x)) + x for x, _ in examples])
    mask = torch.tensor([[0] * (t - len(x)) + [1] * len(x) for x, _ in examples])
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    hidden = core(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).last_hidden_state
    rows = torch.tensor([r for r, (_, n) in enumerate(examples) for _ in range(n)])
    cols = torch.tensor([c for _, n in examples for c in range(t - n, t)])
    logits = head(hidden[rows, cols - 1])
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits.float(), ids[rows, cols])


def validation_loss(model, dev, batch_size: int, pad: int) -> float:
    """`trainer::validation_loss`: chunks of `batch_size` in order, each chunk's token mean
    weighted by its sentences."""
    total, n = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(dev), max(batch_size, 1)):
            chunk = dev[k : k + batch_size]
            total += batch_loss(model, chunk, pad).item() * len(chunk)
            n += len(chunk)
    return total / max(n, 1)


def add_lora(model, t: dict, init: str):
    from peft import LoraConfig, get_peft_model

    names = [TARGETS[x] for x in t["lora_targets"]]
    model = get_peft_model(model, LoraConfig(r=t["lora_rank"], lora_alpha=t["lora_alpha"], lora_dropout=0.0, bias="none", target_modules=names))
    if init == "ours":
        core, _, _ = parts(model)
        with torch.no_grad():
            for layer, block in enumerate(core.layers):
                for target in t["lora_targets"]:
                    owner = block.self_attn if target in ("q", "k", "v", "o") else block.mlp
                    lin = getattr(owner, TARGETS[target])
                    a = lin.lora_A["default"].weight  # [r, in]
                    a.copy_(torch.from_numpy(lora_a(t["seed"], layer, target, a.shape[1], t["lora_rank"])).T)
                    assert lin.scaling["default"] == t["lora_alpha"] / t["lora_rank"]
                    assert not lin.lora_B["default"].weight.any(), "B starts at zero"
    return model


def toml_value(v) -> str:
    """A TOML value (strings as JSON strings, which TOML reads the same; tables inline)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


def write_eval_config(cfg: dict, method: str, model_dir: Path, out: Path):
    """A run config that decodes the saved model with our decoder as a plain model (`none`), with
    the run's `[prompt]` and `[eval]` settings: `cargo xtask eval --config {out}`."""
    ev = {k: v for k, v in cfg.get("eval", {}).items() if k not in ("methods", "baseline", "compare", "transfer")}
    ev.update(methods=["none"], baseline="none")
    name = f"{cfg['run']['name']}-torch-{method}"
    lines = [
        f"# Written by bench/train_reference.py: the PyTorch-trained `{method}` of {cfg['run']['name']}, decoded",
        "# and scored by our evaluation as a plain model.",
        "[run]",
        f"name = {toml_value(name)}",
        f"dir = {toml_value(str(model_dir.parent / 'eval'))}",
        f"directions = {toml_value(cfg['run']['directions'])}",
        "[model]",
        f"path = {toml_value(str(model_dir))}",
        f"backend = {toml_value(cfg['model'].get('backend', 'flex'))}",
        "[prompt]",
        *(f"{k} = {toml_value(v)}" for k, v in cfg["prompt"].items()),
        "[eval]",
        *(f"{k} = {toml_value(v)}" for k, v in ev.items()),
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- the run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True, help="our run config (TOML)")
    ap.add_argument("--method", required=True, choices=["full", "lora"])
    ap.add_argument("--out", type=Path, required=True, help="folder for train.json, loss.csv, batches.json")
    ap.add_argument("--model", type=Path, help="a Hugging Face folder or .gguf file instead of the config's [model]")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a [train] key after the method's table (TOML value), e.g. --set pairs=8")
    ap.add_argument("--lora-init", choices=["ours", "peft"], default="ours", help="LoRA A: our initialisation exactly (default) or PEFT's own draw")
    ap.add_argument("--stop-after", type=int, help="stop after this many optimizer steps (the schedule still spans the whole run)")
    ap.add_argument("--save", type=Path, help="write the trained model (LoRA merged) as a Hugging Face folder here")
    ap.add_argument("--dump-examples", action="store_true", help="also write examples.json (the ids and target lengths)")
    ap.add_argument("--plan-only", action="store_true", help="tokenize and plan only: write batches.json (and examples.json) without loading the model")
    ap.add_argument("--checkpoint-every", type=int, help="checkpoint this often instead of the config's checkpoint_every (not part of the run's identity)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: %(default)s)")
    ap.add_argument("--attn-implementation", default="eager", help="transformers attention kernel (default: %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # only PEFT's own LoRA draw (--lora-init peft) uses it

    cfg = load_config(args.config, args.method, args.set)
    t = cfg["train"]
    s = {k: t[k] for k in SETTINGS_KEYS}
    if args.checkpoint_every is not None:
        s["checkpoint_every"] = args.checkpoint_every
    path = args.model or model_path(cfg)
    directions = [tuple(d.split("-")) for d in cfg["run"]["directions"]]
    tok, eos = Tokenizer(path), eos_id(path)

    # Examples, as stages::train builds them.
    train_sets, train_lines, dev = [], [], []
    for d, direction in enumerate(directions):
        pairs = read_parallel(t["data"], direction)[: t["pairs"]]
        kept, lines = [], []
        for k, (src, tgt, line) in enumerate(pairs):
            ex = example(tok, eos, direction, src, tgt, template_for(cfg, t["seed"], d, k), t["max_len"])
            if ex is not None:
                kept.append(ex)
                lines.append((k, line))
        if len(kept) < len(pairs):
            print(f"{'-'.join(direction)}: {len(pairs) - len(kept)} targets longer than max_len {t['max_len']} skipped", file=sys.stderr)
        train_sets.append(kept)
        train_lines.append(lines)
        for src, tgt, _ in read_parallel(t["dev"], direction)[: t["dev_pairs"]]:
            ex = example(tok, eos, direction, src, tgt, cfg["prompt"]["template"], t["max_len"])
            if ex is not None:
                dev.append(ex)
    batches = plan([len(x) for x in train_sets], s["batch_size"], s["epochs"], s["seed"])
    accum = max(s["grad_accum"], 1)
    total = math.ceil(len(batches) / accum)

    args.out.mkdir(parents=True, exist_ok=True)
    plan_out = [{"direction": "-".join(directions[d]), "examples": idx, "pairs": [train_lines[d][i][0] for i in idx], "lines": [train_lines[d][i][1] for i in idx]} for d, idx in batches]
    (args.out / "batches.json").write_text("[\n" + ",\n".join(json.dumps(b) for b in plan_out) + "\n]\n")
    if args.dump_examples:
        dump = {"train": [[{"ids": ids, "target_len": n} for ids, n in x] for x in train_sets], "dev": [{"ids": ids, "target_len": n} for ids, n in dev]}
        (args.out / "examples.json").write_text(json.dumps(dump) + "\n")
    if args.plan_only:
        n_tokens = sum(len(ids) for x in train_sets for ids, _ in x)
        print(f"{[len(x) for x in train_sets]} examples, {len(dev)} dev, {len(batches)} micro-batches, {total} optimizer steps, "
              f"{n_tokens} tokens per epoch → {args.out / 'batches.json'}")
        return

    t0 = time.perf_counter()
    model = load_model(path, args.attn_implementation)
    model.eval()  # no dropout anywhere (ours has none); gradients flow all the same
    pad = model.config.get_text_config().pad_token_id
    pad = 0 if pad is None else pad  # as ours; padded positions are masked either way
    model_parameters = sum(p.numel() for p in model.parameters())
    if args.method == "lora":
        model = add_lora(model, t, args.lora_init)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    print(f"loaded {path} in {time.perf_counter() - t0:.1f}s; {args.method}: {trainable} trainable parameters of {model_parameters}; "
          f"{total} steps of {accum} × {s['batch_size']}; {sum(map(len, train_sets))} examples, {len(dev)} dev", file=sys.stderr)
    optim = torch.optim.AdamW(params, lr=s["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=s["weight_decay"])

    losses, lrs, validation, tokens, seconds = [], [], [], 0, 0.0
    # Resumable as our trainer is: the trainable tensors, AdamW's state and the record so far,
    # every `checkpoint_every` steps. Training draws no random numbers (no dropout; the LoRA
    # draw happened above, from a fixed seed), so a resumed run equals an uninterrupted one.
    ckpt = args.out / "checkpoint.pt"
    # How often it checkpoints does not change what it computes, so it is not part of the key.
    key = {"method": args.method, "settings": {k: v for k, v in s.items() if k != "checkpoint_every"}, "total": total, "trainable": trainable, "lora_init": args.lora_init}
    first = 0
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        if saved["key"] != key:
            sys.exit(f"{ckpt}: a checkpoint of another setup ({saved['key']} ≠ {key}); delete it to start over")
        with torch.no_grad():
            for p, v in zip(params, saved["params"]):
                p.copy_(v)
        optim.load_state_dict(saved["optim"])
        first, losses, lrs, validation, tokens, seconds = saved["step"], saved["losses"], saved["lrs"], saved["validation"], saved["tokens"], saved["seconds"]
        print(f"resuming from {ckpt} at step {first}", file=sys.stderr)

    def checkpoint(done):
        tmp = ckpt.with_suffix(".pt.tmp")
        torch.save({"key": key, "params": [p.detach() for p in params], "optim": optim.state_dict(), "step": done, "losses": losses,
                    "lrs": lrs, "validation": validation, "tokens": tokens, "seconds": seconds}, tmp)
        os.replace(tmp, ckpt)

    for step in range(first, total):
        start = time.perf_counter()
        lr = lr_at(s, step, total)
        for g in optim.param_groups:
            g["lr"] = lr
        micro = batches[step * accum : (step + 1) * accum]
        loss_sum = 0.0
        for d, idx in micro:
            examples = [train_sets[d][i] for i in idx]
            loss = batch_loss(model, examples, pad) / len(micro)
            loss.backward()
            loss_sum += loss.item()
            tokens += sum(len(ids) for ids, _ in examples)
        optim.step()
        optim.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - start
        losses.append(loss_sum)
        lrs.append(lr)
        done = step + 1
        if s["eval_every"] > 0 and done % s["eval_every"] == 0 and done < total:
            validation.append((done, validation_loss(model, dev, s["batch_size"], pad)))
        print(f"step {done}/{total} lr {lr:.3e} loss {loss_sum:.6f}" + (f" validation {validation[-1][1]:.6f}" if validation and validation[-1][0] == done else ""), file=sys.stderr)
        if s["checkpoint_every"] > 0 and done % s["checkpoint_every"] == 0 and done < total:
            checkpoint(done)
        if args.stop_after == done and done < total:
            break
    finished = len(losses) == total
    if finished and dev and (not validation or validation[-1][0] != total):
        validation.append((total, validation_loss(model, dev, s["batch_size"], pad)))

    import peft
    import transformers

    summary = {
        "side": "torch",
        "method": args.method,
        "model": str(path),
        "trainable_parameters": trainable,
        "model_parameters": model_parameters,
        "trainable_share": trainable / model_parameters,
        "steps": len(losses),
        "total_steps": total,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / max(seconds, 1e-9),
        "train_loss": losses,
        "lr": lrs,
        "validation_loss": validation,
        "settings": s,
        "pairs": t["pairs"],
        "dev_pairs": t["dev_pairs"],
        "examples": [len(x) for x in train_sets],
        "dev_examples": len(dev),
        "prompt": cfg["prompt"],
        "added": {k: t[k] for k in ["adapter_size", "lora_alpha", "lora_rank", "lora_targets"]} if args.method == "lora" else None,
        "lora_init": args.lora_init if args.method == "lora" else None,
        "attn_implementation": args.attn_implementation,
        "threads": args.threads,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    (args.out / "train.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    val = dict(validation)
    with open(args.out / "loss.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "lr", "train_loss", "validation_loss"])
        for k, (l, r) in enumerate(zip(losses, lrs), 1):
            w.writerow([k, repr(r), repr(l), repr(val[k]) if k in val else ""])
    print(f"{len(losses)} steps, {tokens / max(seconds, 1e-9):.1f} tokens/s, loss {losses[0]:.4f} → {losses[-1]:.4f}, "
          f"validation {validation} → {args.out}")

    if args.save:
        out = model.merge_and_unload() if args.method == "lora" else model
        # A model read from GGUF keeps transformers' GGUF quantizer, which refuses to save; its
        # weights were dequantized on load, so they are saved as plain f32 tensors.
        out.hf_quantizer = None
        if getattr(out.config, "quantization_config", None) is not None:
            del out.config.quantization_config
        args.save.mkdir(parents=True, exist_ok=True)
        out.save_pretrained(str(args.save), safe_serialization=True)
        tok.save(args.save)
        write_eval_config(cfg, args.method, args.save, args.out / "eval.toml")
        print(f"saved the trained model to {args.save}; decode it with: cargo xtask eval --config {args.out / 'eval.toml'}", file=sys.stderr)


if __name__ == "__main__":
    main()
