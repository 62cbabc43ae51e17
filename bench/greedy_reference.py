#!/usr/bin/env python3
"""Greedy reference translations from Hugging Face transformers, to check our decoder against.

Loads a GGUF model (Gemma 3 270M by default, from the landermt model cache) with transformers,
which dequantizes it to float32, and translates FLORES-200 devtest lines FIRST..LAST (1-based,
inclusive) greedily, one sentence at a time, with the same prompt our evaluation builds
(`landermt-data/src/prompt.rs`):

* the template has `{Src}`/`{Tgt}` (the languages' English names), `{src}` (the source
  sentence) and `{tgt}` (where the translation starts); the prompt is the filled text before
  `{tgt}` with its trailing spaces removed (so, by default, it ends in `French:`);
* the prompt is tokenized with the tokenizer's default special tokens (BOS first);
* decoding is greedy (do_sample=False, num_beams=1), batch 1, no padding, at most
  --max-new-tokens tokens, and stops at EOS or, with `--newline after-text` (the default, as
  `[eval] newline`), at the first newline that follows non-whitespace text, the hypothesis being
  the first non-empty line (`text.strip().split("\\n")[0]`); with `--newline first`, at the first
  generated token whose decoded text contains a newline, cut there (the rule before 2026-12-06);
* the generated ids are decoded with skip_special_tokens=True and stripped of surrounding
  whitespace.

Writes one hypothesis per line to --out and, for debugging, `<out>.ids.json` (per line: the
prompt's ids and the generated ids, the stopping token included).

    python -m venv .venv && .venv/bin/pip install torch transformers gguf
    cargo xtask fetch-model gemma-3-270m
    .venv/bin/python bench/greedy_reference.py --direction en-fr --first 501 --last 600 \\
        --out /tmp/none.flores.en-fr.hyp
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from landermt_common import DEFAULT_TEMPLATE, LANGUAGES, cached_model, split_template  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def check_template(template: str) -> None:
    """Refuses what `Template::from_str` refuses."""
    names = re.findall(r"\{([A-Za-z_]+)\}", template)
    for required in ("src", "tgt"):
        if names.count(required) != 1:
            raise SystemExit(f"--template must contain {{{required}}} exactly once")
    unknown = sorted(set(names) - {"Src", "Tgt", "src", "tgt"})
    if unknown:
        raise SystemExit(f"--template: unknown placeholder(s) {unknown}; use {{Src}} {{Tgt}} {{src}} {{tgt}}")
    if names.index("src") > names.index("tgt"):
        raise SystemExit("--template: {tgt} comes before {src}")


def read_lines(path: Path, first: int, last: int) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not 1 <= first <= last <= len(lines):
        raise SystemExit(f"{path} has {len(lines)} lines; --first {first} --last {last} is out of range")
    return lines[first - 1 : last]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--direction", required=True, help="SRC-TGT, e.g. en-fr or fr-en")
    ap.add_argument("--first", type=int, required=True, help="first devtest line, 1-based")
    ap.add_argument("--last", type=int, required=True, help="last devtest line, inclusive")
    ap.add_argument("--out", type=Path, required=True, help="hypotheses, one per line")
    ap.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt template; a typed `\\n` means a newline (default: %(default)r)")
    ap.add_argument("--model", type=Path, default=cached_model("gemma-3-270m"), help="GGUF file (default: %(default)s)")
    ap.add_argument("--data", type=Path, default=REPO / "data" / "flores200-devtest", help="FLORES-200 devtest folder")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--newline", choices=["after-text", "first"], default="after-text", help="where a newline ends the translation, as [eval] newline")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--attn-implementation", default="sdpa", help="transformers attention kernel (sdpa, eager)")
    args = ap.parse_args()

    try:
        src_code, tgt_code = args.direction.split("-")
        src_stem = LANGUAGES[src_code][1]
        LANGUAGES[tgt_code]
    except (ValueError, KeyError):
        raise SystemExit(f"--direction {args.direction!r}: expected SRC-TGT with codes from {sorted(LANGUAGES)}")
    if not args.model.is_file():
        raise SystemExit(f"{args.model} not found (cargo xtask fetch-model gemma-3-270m)")
    template = args.template.replace("\\n", "\n")  # a literal `\n` typed in the shell is a newline
    check_template(template)

    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

    sources = read_lines(args.data / f"{src_stem}.devtest", args.first, args.last)
    model_dir, model_file = str(args.model.parent), args.model.name
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, gguf_file=model_file, dtype=torch.float32, attn_implementation=args.attn_implementation
    )
    model.eval()
    print(f"loaded {args.model} in {time.perf_counter() - t0:.1f}s ({type(model).__name__}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters)", file=sys.stderr)

    eos = model.generation_config.eos_token_id
    eos_ids = sorted({eos} if isinstance(eos, int) else set(eos or [])) or [tokenizer.eos_token_id]
    print(f"BOS {tokenizer.bos_token!r}={tokenizer.bos_token_id}, EOS ids {eos_ids} "
          f"({[tokenizer.convert_ids_to_tokens(i) for i in eos_ids]})", file=sys.stderr)

    class StopAtNewline(StoppingCriteria):
        """`first`: stops once the last generated token's decoded text contains a newline.
        `after-text`: once a token's newline follows non-whitespace text (in that token or an
        earlier generated one), each token's text taken alone as `LineBreaks` takes it."""

        def __init__(self, prompt_len: int, rule: str):
            self.prompt_len, self.rule = prompt_len, rule

        def __call__(self, input_ids, scores, **kwargs):
            if input_ids.shape[1] <= self.prompt_len:
                return torch.zeros(input_ids.shape[0], dtype=torch.bool)
            out = []
            for row in input_ids[:, self.prompt_len :].tolist():
                texts = [tokenizer.decode([t]) for t in row]
                last = texts[-1]
                if self.rule == "first":
                    out.append("\n" in last)
                    continue
                had_text = any(t.strip() for t in texts[:-1])
                first_text = next((i for i, c in enumerate(last) if not c.isspace()), None)
                ends_own_line = first_text is not None and "\n" in last[first_text:]
                out.append("\n" in last and (had_text or ends_own_line))
            return torch.tensor(out, dtype=torch.bool)

    hyps, records = [], []
    start = time.perf_counter()
    for k, src in enumerate(sources):
        prompt, _ = split_template(template, (src_code, tgt_code), src, "")
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]  # default special tokens: BOS
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                num_beams=1,
                max_new_tokens=args.max_new_tokens,
                eos_token_id=eos_ids,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0],
                stopping_criteria=StoppingCriteriaList([StopAtNewline(ids.shape[1], args.newline)]),
                temperature=None,
                top_p=None,
                top_k=None,
            )
        gen = out[0, ids.shape[1] :].tolist()
        decoded = tokenizer.decode(gen, skip_special_tokens=True)
        if args.newline == "first":
            text = decoded.split("\n", 1)[0].strip()
        else:
            text = next((line.strip() for line in decoded.split("\n") if line.strip()), "")
        hyps.append(text)
        records.append({"line": args.first + k, "prompt_ids": ids[0].tolist(), "generated_ids": gen})
        done = k + 1
        if done % 10 == 0 or done == len(sources):
            rate = done / (time.perf_counter() - start)
            print(f"{done}/{len(sources)} sentences, {rate:.3f} sentences/s", file=sys.stderr)
    elapsed = time.perf_counter() - start

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    meta = {
        "model": str(args.model),
        "direction": args.direction,
        "first": args.first,
        "last": args.last,
        "template": template,
        "max_new_tokens": args.max_new_tokens,
        "eos_ids": eos_ids,
        "attn_implementation": args.attn_implementation,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    # Readable JSON: the settings first, then one line per sentence.
    body = ",\n".join(f"  {json.dumps(r)}" for r in records)
    head = json.dumps(meta, ensure_ascii=False, indent=1)[:-2]
    Path(f"{args.out}.ids.json").write_text(f'{head},\n "lines": [\n{body}\n ]\n}}\n', encoding="utf-8")
    print(f"{len(sources)} sentences in {elapsed:.1f}s: {len(sources) / elapsed:.3f} sentences/s -> {args.out}")


if __name__ == "__main__":
    main()
