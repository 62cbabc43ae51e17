"""What the Python reference scripts share with landermt: the languages, the prompt templates
and how a template splits into prompt and target, and where the model cache is.

Each piece mirrors the Rust code it names, so that the scripts build the same text as ours.
"""

import os
from pathlib import Path

# Language code -> (English name, FLORES-200 file stem): crates/landermt-data/src/lang.rs.
LANGUAGES = {
    "en": ("English", "eng_Latn"),
    "fr": ("French", "fra_Latn"),
    "de": ("German", "deu_Latn"),
    "it": ("Italian", "ita_Latn"),
    "zh": ("Chinese", "zho_Hans"),
    "ar": ("Arabic", "arb_Arab"),
    "es": ("Spanish", "spa_Latn"),
    "ja": ("Japanese", "jpn_Jpan"),
    "ru": ("Russian", "rus_Cyrl"),
}

DEFAULT_TEMPLATE = "Translate this from {Src} to {Tgt}:\n{Src}: {src}\n{Tgt}: {tgt}"


# The ref-code's ten templates of `[prompt] train = "mixed"` (landermt-data/src/prompt.rs).
MIXED_TEMPLATES = [
    "Translate the following text from {Src} to {Tgt}.\n{Src}: {src}\n{Tgt}:\n{tgt}",
    "Translate this {Src} sentence into {Tgt}:\n{src}\n{tgt}",
    "{Src}: {src}\n{Tgt}:\n{tgt}",
    'Translate "{src}" to {Tgt}.\n{tgt}',
    "Please translate the sentence below from {Src} into {Tgt}.\n{src}\n{tgt}",
    'What is the {Tgt} translation of the {Src} sentence "{src}"?\n{tgt}',
    "{src}\nTranslate the sentence above into {Tgt}.\n{tgt}",
    "Source ({Src}): {src}\nTarget ({Tgt}):\n{tgt}",
    "Render the following {Src} text in {Tgt}:\n{src}\n{tgt}",
    "Give the {Tgt} version of this {Src} sentence:\n{src}\n{tgt}",
]

# `[train]` defaults (crates/landermt-pipeline/src/config.rs TrainSection::default, landermt_train::Settings and
# AddedSettings defaults).
KNOWN_MODELS = {"gemma-3-270m": "gemma-3-270m-q4_k_m.gguf"}


def cache_dir() -> Path:
    """`$LANDERMT_CACHE`, else `$XDG_CACHE_HOME/landermt`, else `~/.cache/landermt` (cache.rs)."""
    if os.environ.get("LANDERMT_CACHE"):
        return Path(os.environ["LANDERMT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "landermt"
    return Path.home() / ".cache" / "landermt"


def cached_model(name: str) -> Path:
    """Where `cargo xtask fetch-model NAME` puts a known model."""
    return cache_dir() / "models" / name / KNOWN_MODELS[name]


def split_template(template: str, direction: tuple[str, str], src: str, tgt: str) -> tuple[str, str]:
    """(prompt, target) as `Template::prompt`/`Template::target`: placeholders are `{name}` with
    ASCII letters and underscores, found in the template only; the spaces and tabs that end the
    text before `{tgt}` move to the target."""
    values = {"Src": LANGUAGES[direction[0]][0], "Tgt": LANGUAGES[direction[1]][0], "src": src}
    before, after, k = [], [], 0
    out = before
    while k < len(template):
        if template[k] == "{":
            j = k + 1
            while j < len(template) and (template[j].isascii() and (template[j].isalpha() or template[j] == "_")):
                j += 1
            name = template[k + 1 : j]
            if name and j < len(template) and template[j] == "}":
                if name == "tgt":
                    out = after
                    out.append(tgt)
                else:
                    out.append(values[name])
                k = j + 1
                continue
        out.append(template[k])
        k += 1
    b, a = "".join(before), "".join(after)
    kept = b.rstrip(" \t")
    return kept, b[len(kept) :] + a
