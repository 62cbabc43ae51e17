//! Corpora. Parallel: `source<TAB>target` TSV files, two aligned text files, or lines of
//! FLORES-200 (one file per language, line n the same sentence in every file). Monolingual:
//! one side of FLORES-200 lines, or a text file per language.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lang::{Direction, Language};

/// One sentence and its translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub src: String,
    pub tgt: String,
}

/// Where a direction's parallel sentences come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ParallelSource {
    /// FLORES-200 files `{dir}/{flores_code}.devtest`, lines `first..=last` (1-based).
    Flores { dir: PathBuf, first: usize, last: usize },
    /// `source<TAB>target` per line. The columns are `src_lang` and `tgt_lang` of the file's
    /// pair, swapped when the direction runs the other way.
    Tsv { path: PathBuf, src_lang: String, tgt_lang: String },
    /// Two files aligned line by line.
    Files { src: PathBuf, tgt: PathBuf },
    /// The shared corpus layout: `{dir}/{split}.{a}-{b}.tsv` with `a<TAB>b` lines, the pair
    /// named either way round (e.g. `data/corpus/train.en-fr.tsv` for en-fr and fr-en).
    Corpus { dir: PathBuf, split: String },
    /// OPUS-100-style test folders: `{dir}/{a}-{b}/test.{a}` and `test.{b}`, with the pair
    /// folder named either way round.
    Opus { dir: PathBuf },
}

/// Where a language's monolingual sentences come from (one sentence per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum MonoSource {
    /// FLORES-200 files `{dir}/{flores_code}.devtest`, lines `first..=last` (1-based).
    Flores { dir: PathBuf, first: usize, last: usize },
    /// A text file per language code, e.g. `{ en = "mono/en.txt", fr = "mono/fr.txt" }`.
    Files { files: BTreeMap<String, PathBuf> },
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {msg}")]
    Line { path: PathBuf, line: usize, msg: String },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
}

fn read_lines(path: &Path) -> Result<Vec<String>, CorpusError> {
    let text = std::fs::read_to_string(path).map_err(|source| CorpusError::Io { path: path.into(), source })?;
    // Windows line ends and a UTF-8 byte-order mark are read as if absent.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(CorpusError::File { path: path.into(), msg: "the file is empty".into() });
    }
    Ok(lines)
}

/// Lines `first..=last` (1-based) of the FLORES-200 file of `lang` in `dir`, clipped to the
/// file with a warning.
fn flores_lines(dir: &Path, lang: Language, first: usize, last: usize) -> Result<(PathBuf, Vec<String>), CorpusError> {
    let path = dir.join(format!("{}.devtest", lang.flores));
    let lines = read_lines(&path)?;
    if first == 0 || first > last {
        return Err(CorpusError::File { path: dir.into(), msg: format!("line range {first}..={last} is empty (lines count from 1)") });
    }
    let end = last.min(lines.len());
    if end < last {
        tracing::warn!(path = %path.display(), lines = lines.len(), wanted = last, "fewer lines than asked; using what there is");
    }
    let picked = lines.get(first - 1..end).map(<[String]>::to_vec).unwrap_or_default();
    Ok((path, picked))
}

/// Reads the sentences of `lang` from `source`; blank lines are skipped.
pub fn read_monolingual(source: &MonoSource, lang: Language) -> Result<Vec<String>, CorpusError> {
    let lines = match source {
        MonoSource::Flores { dir, first, last } => flores_lines(dir, lang, *first, *last)?.1,
        MonoSource::Files { files } => {
            let path = files.get(lang.code).ok_or_else(|| CorpusError::File {
                path: PathBuf::from(format!("files.{}", lang.code)),
                msg: format!("no monolingual file for language `{}` (files are given for: {})", lang.code, files.keys().cloned().collect::<Vec<_>>().join(", ")),
            })?;
            read_lines(path)?
        }
    };
    Ok(lines.into_iter().filter(|l| !l.trim().is_empty()).collect())
}

/// Reads the pairs of `direction` from `source`.
pub fn read_parallel(source: &ParallelSource, direction: Direction) -> Result<Vec<Pair>, CorpusError> {
    match source {
        ParallelSource::Flores { dir, first, last } => {
            let (src_path, src) = flores_lines(dir, direction.src, *first, *last)?;
            let (tgt_path, tgt) = flores_lines(dir, direction.tgt, *first, *last)?;
            if src.len() != tgt.len() {
                return Err(CorpusError::File { path: tgt_path, msg: format!("{} lines in the range, but {} has {}", tgt.len(), src_path.display(), src.len()) });
            }
            Ok(src.into_iter().zip(tgt).map(|(src, tgt)| Pair { src, tgt }).collect())
        }
        ParallelSource::Tsv { path, src_lang, tgt_lang } => {
            let swap = if (src_lang.as_str(), tgt_lang.as_str()) == (direction.src.code, direction.tgt.code) {
                false
            } else if (src_lang.as_str(), tgt_lang.as_str()) == (direction.tgt.code, direction.src.code) {
                true
            } else {
                return Err(CorpusError::File { path: path.clone(), msg: format!("holds {src_lang}-{tgt_lang} pairs, not {direction}") });
            };
            let mut pairs = Vec::new();
            for (i, line) in read_lines(path)?.into_iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |msg: &str| CorpusError::Line { path: path.clone(), line: i + 1, msg: msg.into() };
                let (a, b) = line.split_once('\t').ok_or_else(|| bad("no tab between source and target"))?;
                if b.contains('\t') {
                    return Err(bad("more than two tab-separated columns (expected source<TAB>target)"));
                }
                if a.trim().is_empty() || b.trim().is_empty() {
                    return Err(bad("an empty side (blank lines are skipped, half-empty ones are not)"));
                }
                let (src, tgt) = if swap { (b, a) } else { (a, b) };
                pairs.push(Pair { src: src.to_string(), tgt: tgt.to_string() });
            }
            Ok(pairs)
        }
        ParallelSource::Corpus { dir, split } => {
            let (s, t) = (direction.src.code, direction.tgt.code);
            for (a, b) in [(s, t), (t, s)] {
                let path = dir.join(format!("{split}.{a}-{b}.tsv"));
                if path.is_file() {
                    return read_parallel(&ParallelSource::Tsv { path, src_lang: a.into(), tgt_lang: b.into() }, direction);
                }
            }
            Err(CorpusError::File { path: dir.clone(), msg: format!("no `{split}.{s}-{t}.tsv` or `{split}.{t}-{s}.tsv`") })
        }
        ParallelSource::Opus { dir } => {
            let (s, t) = (direction.src.code, direction.tgt.code);
            let folder = [dir.join(format!("{s}-{t}")), dir.join(format!("{t}-{s}"))]
                .into_iter()
                .find(|p| p.is_dir())
                .ok_or_else(|| CorpusError::File { path: dir.clone(), msg: format!("no `{s}-{t}` or `{t}-{s}` folder") })?;
            read_parallel(&ParallelSource::Files { src: folder.join(format!("test.{s}")), tgt: folder.join(format!("test.{t}")) }, direction)
        }
        ParallelSource::Files { src, tgt } => {
            let (a, b) = (read_lines(src)?, read_lines(tgt)?);
            if a.len() != b.len() {
                return Err(CorpusError::File { path: tgt.clone(), msg: format!("{} lines, but {} has {}: the files are not aligned", b.len(), src.display(), a.len()) });
            }
            Ok(a.into_iter().zip(b).map(|(src, tgt)| Pair { src, tgt }).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    #[test]
    fn crlf_line_ends_and_a_byte_order_mark_read_as_plain_lines() {
        let dir = tempfile::tempdir().unwrap();
        let d: Direction = "en-fr".parse().unwrap();
        let source = |p: PathBuf| ParallelSource::Tsv { path: p, src_lang: "en".into(), tgt_lang: "fr".into() };
        let clean = read_parallel(&source(write(dir.path(), "clean.tsv", "Hello\tBonjour\nYes\tOui\n")), d).unwrap();
        let windows = read_parallel(&source(write(dir.path(), "crlf.tsv", "\u{feff}Hello\tBonjour\r\nYes\tOui\r\n")), d).unwrap();
        assert_eq!(clean, windows);
        assert_eq!(windows[0].src, "Hello");
    }

    #[test]
    fn half_empty_lines_and_extra_columns_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let d: Direction = "en-fr".parse().unwrap();
        for (name, text, what) in [("half.tsv", "Hello\tBonjour\n\tOui\n", "empty side"), ("three.tsv", "Hello\tBonjour\nYes\tOui\tJa\n", "columns")] {
            let err = read_parallel(&ParallelSource::Tsv { path: write(dir.path(), name, text), src_lang: "en".into(), tgt_lang: "fr".into() }, d).unwrap_err().to_string();
            assert!(err.contains(&format!("{name}:2")) && err.contains(what), "{err}");
        }
    }

    #[test]
    fn tsv_reads_both_directions_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "t.tsv", "Hello\tBonjour\nCat\tChat\n");
        let src = ParallelSource::Tsv { path: path.clone(), src_lang: "en".into(), tgt_lang: "fr".into() };
        let fwd = read_parallel(&src, "en-fr".parse().unwrap()).unwrap();
        assert_eq!(fwd[1], Pair { src: "Cat".into(), tgt: "Chat".into() });
        let back = read_parallel(&src, "fr-en".parse().unwrap()).unwrap();
        assert_eq!(back[0], Pair { src: "Bonjour".into(), tgt: "Hello".into() });
        let err = read_parallel(&src, "en-de".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("t.tsv") && err.contains("en-de"), "{err}");

        write(dir.path(), "t.tsv", "Hello\tBonjour\nno tab here\n");
        let err = read_parallel(&src, "en-fr".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("t.tsv:2") && err.contains("no tab"), "{err}");

        write(dir.path(), "t.tsv", "\n\n");
        let err = read_parallel(&src, "en-fr".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn monolingual_sources_read_one_language() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "eng_Latn.devtest", "one\ntwo\nthree\n");
        let en: Language = "en".parse().unwrap();
        let flores = MonoSource::Flores { dir: dir.path().into(), first: 2, last: 3 };
        assert_eq!(read_monolingual(&flores, en).unwrap(), ["two", "three"]);
        let path = write(dir.path(), "en.txt", "a\n\nb\n");
        let files = MonoSource::Files { files: [("en".to_string(), path)].into() };
        assert_eq!(read_monolingual(&files, en).unwrap(), ["a", "b"]);
        let err = read_monolingual(&files, "fr".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("no monolingual file for language `fr`") && err.contains("en"), "{err}");
    }

    #[test]
    fn corpus_layout_finds_the_pair_file_either_way_round() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.en-fr.tsv", "Cat\tChat\n");
        let src = ParallelSource::Corpus { dir: dir.path().into(), split: "train".into() };
        assert_eq!(read_parallel(&src, "fr-en".parse().unwrap()).unwrap(), vec![Pair { src: "Chat".into(), tgt: "Cat".into() }]);
        let err = read_parallel(&src, "en-de".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("train.en-de.tsv"), "{err}");
    }

    #[test]
    fn aligned_files_must_have_equal_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (write(dir.path(), "a.en", "x\ny\n"), write(dir.path(), "b.fr", "x\n"));
        let err = read_parallel(&ParallelSource::Files { src: a, tgt: b }, "en-fr".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("b.fr") && err.contains("not aligned"), "{err}");
    }

    #[test]
    fn flores_line_ranges_are_one_based_and_clipped() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "eng_Latn.devtest", "one\ntwo\nthree\n");
        write(dir.path(), "fra_Latn.devtest", "un\ndeux\ntrois\n");
        let src = ParallelSource::Flores { dir: dir.path().into(), first: 2, last: 10 };
        let pairs = read_parallel(&src, "en-fr".parse().unwrap()).unwrap();
        assert_eq!(pairs, vec![Pair { src: "two".into(), tgt: "deux".into() }, Pair { src: "three".into(), tgt: "trois".into() }]);
        let err = read_parallel(&src, "en-de".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("deu_Latn.devtest"), "{err}");
    }
}
