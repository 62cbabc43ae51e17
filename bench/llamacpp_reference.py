"""llama.cpp (through llama-cpp-python, `bench/llamacpp-venv.sh`) on two of `cargo xtask
bench`'s workloads, for the optional third column of issue 41, item 5:

- decode-b1: the bench's first prompt (its token ids), then exactly `new_tokens` greedy tokens
  with the KV cache, timed with the prompt's prefill, as both other columns time it;
- translate: the bench's 100 FLORES prompts en→fr, greedy, each stopped at EOS or at a token
  holding a newline, the hypothesis cut at the first newline (as `torch_reference.py`). The
  high-level API decodes one sequence at a time, so this column is single-stream: batch 1
  against the others' 16.

    LLAMACPP=$(bash bench/llamacpp-venv.sh)
    $LLAMACPP bench/llamacpp_reference.py --inputs target/bench/inputs-gemma.json --gguf F.gguf --threads 2

The GGUF is the bench's model at the precision the other columns compute in: `cargo xtask
bench --vs-llamacpp PYTHON` writes it (`llamacpp-gemma-f32.gguf` in its output folder) and runs
this script per workload; by hand, `cargo xtask export --config configs/en-fr.toml --method
none --format gguf --out F.gguf` writes the same file. Prints one JSON object per workload.
"""
import argparse
import json
import resource
import time

from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workload", action="append", choices=["decode-b1", "translate"])
    ap.add_argument("--cache", choices=["f32", "f16"], default="f32", help="the KV cache's type")
    args = ap.parse_args()
    inp = json.load(open(args.inputs))
    # The KV cache in f32 (GGML_TYPE_F32 = 0), as the other columns keep it: llama.cpp's default
    # f16 cache moved the logits by ~1e-2 against transformers and changed 59 of 100 greedy
    # hypotheses. `--cache f16` measures its default.
    kv = {"f32": 0, "f16": 1}[args.cache]
    llm = Llama(model_path=args.gguf, n_ctx=1024, n_batch=512, n_threads=args.threads, n_threads_batch=args.threads, type_k=kv, type_v=kv, verbose=False)
    for w in args.workload or ["decode-b1", "translate"]:
        out = decode_b1(llm, inp) if w == "decode-b1" else translate(llm, inp)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        # `flops`: not counted on this side (the bench's ratios are of rates).
        print(json.dumps({"workload": w, "side": "llama.cpp", "flops": 0.0, "peak_rss_mb": peak, **out}), flush=True)


def greedy(llm, tokens, limit, stop):
    """Greedy tokens after `tokens` (KV cache reset first), until `stop(token)` or `limit`."""
    out = []
    for t in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(t)
        if stop(t) or len(out) == limit:
            break
    return out


def decode_b1(llm, inp):
    n = inp["shapes"]["new_tokens"]
    ids = inp["prompt_ids"][0]
    greedy(llm, ids, 2, lambda t: False)
    start = time.perf_counter()
    out = greedy(llm, ids, n, lambda t: False)
    seconds = time.perf_counter() - start
    return dict(count=len(out), unit="tokens", seconds=seconds, note="includes the prompt's prefill")


def translate(llm, inp):
    tr = inp["translate"]
    eos = llm.token_eos()
    newline = lambda t: "\n" in llm.detokenize([t]).decode("utf-8", errors="ignore")
    stop = lambda t: t == eos or newline(t)
    prompts = [llm.tokenize(p.encode("utf-8"), add_bos=True, special=True) for p in tr["prompts"]]
    greedy(llm, prompts[0], 2, stop)
    hyps, generated = [], 0
    start = time.perf_counter()
    for p in prompts:
        gen = greedy(llm, p, tr["max_new_tokens"], stop)
        generated += len(gen)
        text = llm.detokenize([t for t in gen if t != eos]).decode("utf-8", errors="ignore")
        hyps.append(text.split("\n", 1)[0].strip())
    seconds = time.perf_counter() - start
    return dict(count=len(prompts), unit="sentences", seconds=seconds, note=f"batch 1, {generated} tokens generated", hypotheses=hyps)


if __name__ == "__main__":
    main()
