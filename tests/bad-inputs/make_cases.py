#!/usr/bin/env python3
"""Writes the bad-input corpus: one input file per case and `cases.toml`, the manifest that
`xtask/tests/bad_inputs.rs` runs (the command, the preparation, and the error expected).

Configs are written out whole (each one the good `base.toml` with one thing wrong), so that a
reader sees exactly what was fed in. Run from the repository root:

    python3 tests/bad-inputs/make_cases.py
"""
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = (HERE / "base.toml").read_text()
CASES = []


def config(name, old, new, expect, command="pipeline", prepare=None, note=""):
    """A config that is `base.toml` with `old` replaced by `new`."""
    assert old in BASE, f"{name}: {old!r} not in base.toml"
    (HERE / "configs").mkdir(exist_ok=True)
    (HERE / "configs" / f"{name}.toml").write_text(BASE.replace(old, new, 1))
    CASES.append({"name": name, "config": f"configs/{name}.toml", "command": command, "expect": expect, "prepare": prepare or [], "note": note})


def data(name, filename, content: bytes, key_old, key_new, expect, command, prepare=None, note=""):
    """A data file (none when `filename` is None), and a config (base.toml) pointing one source
    at it."""
    d = HERE / "data"
    d.mkdir(exist_ok=True)
    if filename is not None:
        (d / filename).write_bytes(content)
    config(name, key_old, key_new.replace("@DATA@", f"tests/bad-inputs/data/{filename}"), expect, command, prepare, note)


def artifact(name, filename, content, target, expect, command, prepare, note=""):
    """An artifact put into the run folder after `prepare` (good stages), then `command` run."""
    d = HERE / "artifacts"
    d.mkdir(exist_ok=True)
    (d / filename).write_text(content if isinstance(content, str) else json.dumps(content, indent=1))
    config(name, "# bad-input: none", f"# bad-input: the run's {target} is replaced by artifacts/{filename}", expect, command,
           prepare + [f"place artifacts/{filename} @RUN@/{target}"], note)


def model(name, edit, expect, note=""):
    """The tiny LLaMA copied into the case's folder and damaged by the test (`edit`)."""
    config(name, 'path = "tests/fixtures/hf-tiny/llama-tiny"', 'path = "@TMP@/model"', expect, "probe", [f"model {edit}"], note)


for d in ["configs", "data", "artifacts"]:
    shutil.rmtree(HERE / d, ignore_errors=True)

# ---- configs: refused on load, before anything runs ---------------------------------------
config("unknown-key", "lr = 1e-2", "lr = 1e-2\nlearning_rate = 1e-3", ["unknown-key.toml:", "unknown field `learning_rate`"])
config("unknown-section", "[eval]", "[evaluation]\nbeams = 1\n\n[eval]", ["unknown-section.toml:", "unknown field `evaluation`"])
config("wrong-type-number", "n = 6\nk = 2", 'n = "six"\nk = 2', ["wrong-type-number.toml:", "invalid type"])
config("wrong-type-list", 'directions = ["en-fr", "fr-en"]', 'directions = "en-fr"', ["wrong-type-list.toml:", "invalid type"])
config("toml-syntax", "batch_size = 2\n", "batch_size = = 2\n", ["toml-syntax.toml:", "invalid config"])
config("epsilon-above-one", "epsilon = 0.9", "epsilon = 1.5", ["epsilon-above-one.toml:", "[score] epsilon"])
config("epsilon-nan", "epsilon = 0.9", "epsilon = nan", ["epsilon-nan.toml:", "[score] epsilon"])
config("probe-k-zero", "k = 2", "k = 0", ["probe-k-zero.toml:", "[probe] k: must be at least 1"])
config("probe-n-zero", "n = 6\nk = 2", "n = 0\nk = 2", ["probe-n-zero.toml:", "[probe] n: must be at least 1"])
config("eval-beams-zero", "max_new_tokens = 8", "max_new_tokens = 8\nbeams = 0", ["eval-beams-zero.toml:", "[eval] beams: must be at least 1"])
config("train-batch-zero", "batch_size = 2\n", "batch_size = 0\n", ["train-batch-zero.toml:", "[train] batch_size: must be at least 1"])
config("negative-lr", "lr = 1e-2", "lr = -1e-2", ["negative-lr.toml:", "[train] lr", "positive"])
config("method-table-bad-lr", "lr = 1e-2", "lr = 1e-2\n\n[train.methods.lora]\nlr = 0.0", ["method-table-bad-lr.toml:", "[train.methods.lora] lr"])
config("method-table-unknown-key", "lr = 1e-2", "lr = 1e-2\n\n[train.methods.lora]\nlearning_rate = 1e-3", ["method-table-unknown-key.toml:", "learning_rate"])
config("unknown-language", 'directions = ["en-fr", "fr-en"]', 'directions = ["en-xx", "xx-en"]', ["unknown-language.toml:", "xx"])
config("malformed-direction", 'directions = ["en-fr", "fr-en"]', 'directions = ["enfr"]', ["malformed-direction.toml:", "enfr"])
config("duplicate-direction", 'directions = ["en-fr", "fr-en"]', 'directions = ["en-fr", "en-fr"]', ["duplicate-direction.toml:", "[run] directions", "listed twice"])
config("no-directions", 'directions = ["en-fr", "fr-en"]', "directions = []", ["no-directions.toml:", "[run] directions", "no directions"])
config("unknown-method", 'method = "landermt"', 'method = "qlora"', ["unknown-method.toml:", "qlora"])
config("unknown-eval-method", 'methods = ["none", "landermt"]', 'methods = ["none", "prefix-tuning"]', ["unknown-eval-method.toml:", "prefix-tuning"])
config("unknown-car", 'car = "taylor"', 'car = "magic"', ["unknown-car.toml:", "magic"])
config("unknown-rule", 'rule = "pairs"', 'rule = "best"', ["unknown-rule.toml:", "best"])
config("unknown-schedule", "max_len = 160", 'max_len = 160\nschedule = "exponential"', ["unknown-schedule.toml:", "exponential"])
config("unknown-backend", 'backend = "flex"', 'backend = "tpu"', ["unknown-backend.toml:", "tpu"])
config("unknown-gemm", 'backend = "flex"', 'backend = "flex"\ngemm = "blis"', ["unknown-gemm.toml:", "blis"])
config("unknown-model-name", 'path = "tests/fixtures/hf-tiny/llama-tiny"', 'name = "gpt-5"', ["unknown-model-name.toml:", "[model] name", "gpt-5"])
config("model-name-and-path", 'path = "tests/fixtures/hf-tiny/llama-tiny"', 'path = "tests/fixtures/hf-tiny/llama-tiny"\nname = "gemma-3-270m"', ["model-name-and-path.toml:", "[model]", "exactly one of"])
config("missing-model-path", 'path = "tests/fixtures/hf-tiny/llama-tiny"', 'path = "tests/fixtures/hf-tiny/no-such-model"', ["missing-model-path.toml:", "[model] path", "does not exist"])
config("compare-not-evaluated", 'compare = "landermt"', 'compare = "lora"', ["compare-not-evaluated.toml:", "[eval] compare", "not in [eval] methods"])
config("transfer-none", 'transfer = "landermt"', 'transfer = "none"', ["transfer-none.toml:", "[eval] transfer"])
config("test-set-foreign-direction", '{ name = "opus100", n = 3, data = { kind = "opus", dir = "data/opus100-test" } }',
       '{ name = "opus100", n = 3, data = { kind = "opus", dir = "data/opus100-test" }, directions = ["en-zh"] }', ["test-set-foreign-direction.toml:", "[eval] test_sets", "en-zh"])
config("duplicate-test-set-name", '{ name = "opus100", n = 3,', '{ name = "flores", n = 3,', ["duplicate-test-set-name.toml:", "[eval] test_sets", "`flores`"])
config("template-without-src", '[probe]', '[prompt]\ntemplate = "Translate to {Tgt}:\\n{Tgt}: {tgt}"\n\n[probe]', ["template-without-src.toml:", "{src}"])
config("template-without-tgt", '[probe]', '[prompt]\ntemplate = "Translate {src} to {Tgt}:"\n\n[probe]', ["template-without-tgt.toml:", "{tgt}"])
config("unknown-prompt-mixing", '[probe]', '[prompt]\ntrain = "random"\n\n[probe]', ["unknown-prompt-mixing.toml:", "random"])
config("unknown-data-kind", 'data = { kind = "flores", dir = "data/flores200-devtest", first = 1, last = 6 }',
       'data = { kind = "csv", path = "x.csv" }', ["unknown-data-kind.toml:", "csv"])
config("score-one-language", 'extra_languages = ["de"]', 'languages = ["en"]', ["score-one-language.toml:", "[score]"])
config("pairs-not-in-run", "# bad-input: none", "# bad-input: --pairs en-de on an en-fr run", ["pairs-not-in-run.toml", "pair `en-de`"], command="pipeline --pairs en-de")
config("unknown-stage", "# bad-input: none", "# bad-input: --only translate", ["unknown stage `translate`"], command="pipeline --only translate")

# ---- data: refused by the stage that reads it, naming the file (and line) -----------------
TSV_GOOD = (Path("data/corpus/train.en-fr.tsv").read_text().splitlines(keepends=True))[:8]
TRAIN_OLD = 'data = { kind = "tsv", path = "data/corpus/train.en-fr.tsv", src_lang = "en", tgt_lang = "fr" }'
TRAIN_NEW = 'data = { kind = "tsv", path = "@DATA@", src_lang = "en", tgt_lang = "fr" }'
UPSTREAM = ["stage probe", "stage score", "stage route"]
data("tsv-empty", "empty.tsv", b"", TRAIN_OLD, TRAIN_NEW, ["empty.tsv", "empty"], "train", UPSTREAM)
data("tsv-ragged", "ragged.tsv", ("".join(TSV_GOOD[:3]) + "a line without a tab\n" + "".join(TSV_GOOD[3:])).encode(), TRAIN_OLD, TRAIN_NEW, ["ragged.tsv:4"], "train", UPSTREAM)
data("tsv-three-columns", "three-columns.tsv", ("".join(TSV_GOOD[:2]) + "one\ttwo\tthree\n" + "".join(TSV_GOOD[2:])).encode(), TRAIN_OLD, TRAIN_NEW, ["three-columns.tsv:3"], "train", UPSTREAM)
data("tsv-invalid-utf8", "invalid-utf8.tsv", "".join(TSV_GOOD[:2]).encode() + b"caf\xe9\tcaf\xe9\n" + "".join(TSV_GOOD[2:]).encode(), TRAIN_OLD, TRAIN_NEW, ["invalid-utf8.tsv", "UTF-8"], "train", UPSTREAM)
data("tsv-missing", None, b"", TRAIN_OLD, TRAIN_NEW.replace("@DATA@", "tests/bad-inputs/data/no-such-file.tsv"), ["no-such-file.tsv"], "train", UPSTREAM)
data("tsv-empty-side", "empty-side.tsv", ("".join(TSV_GOOD[:2]) + "\tle texte\n" + "".join(TSV_GOOD[2:])).encode(), TRAIN_OLD, TRAIN_NEW, ["empty-side.tsv:3"], "train", UPSTREAM)
FILES_OLD = TRAIN_OLD
(HERE / "data").mkdir(exist_ok=True)
(HERE / "data" / "five.en").write_text("one\ntwo\nthree\nfour\nfive\n")
data("files-mismatched-lines", "four.fr", b"un\ndeux\ntrois\nquatre\n", FILES_OLD,
     'data = { kind = "files", src = "tests/bad-inputs/data/five.en", tgt = "@DATA@" }', ["four.fr", "five.en", "lines"], "train", UPSTREAM)
PROBE_OLD = 'data = { kind = "flores", dir = "data/flores200-devtest", first = 1, last = 6 }'
data("flores-missing-dir", None, b"", PROBE_OLD, 'data = { kind = "flores", dir = "tests/bad-inputs/data/no-flores", first = 1, last = 6 }', ["no-flores"], "probe")
data("flores-empty-range", None, b"", PROBE_OLD, 'data = { kind = "flores", dir = "data/flores200-devtest", first = 7, last = 6 }', ["flores200-devtest", "7..=6"], "probe")
data("flores-line-zero", None, b"", PROBE_OLD, 'data = { kind = "flores", dir = "data/flores200-devtest", first = 0, last = 6 }', ["flores200-devtest", "lines count from 1"], "probe")
data("opus-missing-pair", None, b"", '{ name = "opus100", n = 3, data = { kind = "opus", dir = "data/opus100-test" } }',
     '{ name = "opus100", n = 3, data = { kind = "opus", dir = "tests/bad-inputs/data/no-opus" } }', ["no-opus"], "eval",
     UPSTREAM + ["stage train"])
(HERE / "data" / "mono").mkdir(exist_ok=True)
(HERE / "data" / "mono" / "de.txt").write_bytes(b"Ein Satz.\n\xc3\x28 kaputt\n")
config("mono-invalid-utf8", 'lm_data = { kind = "flores", dir = "data/flores200-devtest", first = 901, last = 903 }',
       'lm_data = { kind = "files", files = { de = "tests/bad-inputs/data/mono/de.txt" } }', ["mono/de.txt", "UTF-8"], "eval", UPSTREAM + ["stage train"])

# ---- models: the tiny LLaMA, damaged -------------------------------------------------------
model("model-truncated", "truncate model.safetensors 4000", ["model.safetensors", "truncated"])
model("model-not-safetensors", "write model.safetensors not a safetensors file", ["model.safetensors"])
model("model-missing-tensor", "drop model.layers.1.mlp.up_proj.weight", ["model.safetensors", "model.layers.1.mlp.up_proj.weight"])
model("model-wrong-shape", "reshape model.layers.0.self_attn.q_proj.weight", ["model.safetensors", "model.layers.0.self_attn.q_proj.weight", "shape"])
model("model-wrong-dtype", "int32 model.norm.weight", ["model.safetensors", "model.norm.weight"])
model("model-unsupported-architecture", 'config model_type "gpt2"', ["config.json", "gpt2"])
model("model-config-not-json", "write config.json {not json", ["config.json"])
model("model-config-missing-field", "config hidden_size null", ["config.json", "hidden_size"])
model("model-no-tokenizer", "remove tokenizer.json", ["tokenizer.json"])
model("model-tokenizer-not-json", "write tokenizer.json [1, 2", ["tokenizer.json"])

# ---- artifacts from another model, another version, or damaged ----------------------------
artifact("layers-other-version", "layers-v999.json", {"version": 999}, "layers.json", ["layers.json"], "score", ["stage probe"])
artifact("layers-not-json", "layers-garbage.json", "{\"version\": 1, \"selected\": [", "layers.json", ["layers.json"], "score", ["stage probe"])
artifact("neurons-not-json", "neurons-garbage.json", "[]", "neurons.json", ["neurons.json"], "route", ["stage probe", "stage score"])
artifact("route-not-json", "route-garbage.json", "{\"version\": \"one\"}", "route.json", ["route.json"], "train", ["stage probe", "stage score", "stage route"])

manifest = ["# Written by make_cases.py: one case per input file; `xtask/tests/bad_inputs.rs` runs them.", ""]
for c in CASES:
    manifest.append("[[case]]")
    manifest.append(f"name = {json.dumps(c['name'])}")
    manifest.append(f"config = {json.dumps(c['config'])}")
    manifest.append(f"command = {json.dumps(c['command'])}")
    manifest.append(f"prepare = {json.dumps(c['prepare'])}")
    manifest.append(f"expect = {json.dumps(c['expect'])}")
    manifest.append("")
(HERE / "cases.toml").write_text("\n".join(manifest))
print(f"{len(CASES)} cases")
