//! The screened head (`landermt_model::screen`): each row's argmax from the AVX and the AMX
//! engines must be the argmax of the f32 logits, the fused multiply-add chain that `skinny`'s f32 kernels
//! compute, ties to the lowest id, banned tokens left out. The embeddings include rows within
//! bf16 rounding of each other, where the bf16 logits alone pick another token, and exact
//! duplicates of the best row.
#![cfg(target_arch = "x86_64")]

use burn::tensor::{Device, Tensor, TensorData};
use half::bf16;
use landermt_model::screen::{Engine, ScreenedHead};
use landermt_model::skinny::{self, Isa};

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The f32 logit of the unscreened head: one FMA after another from 0.
fn chain(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |acc, (&x, &y)| x.mul_add(y, acc))
}

/// The first maximum of row `h`'s f32 logits, leaving out `banned`.
fn reference_argmax(e: &[f32], dim: usize, h: &[f32], banned: &[u32]) -> u32 {
    let mut best = (f32::NEG_INFINITY, 0u32);
    for (i, row) in e.chunks_exact(dim).enumerate() {
        let logit = chain(row, h);
        if !banned.contains(&(i as u32)) && logit > best.0 {
            best = (logit, i as u32);
        }
    }
    best.1
}

/// The argmax of the logits from E rounded to bf16 alone (what a bf16 head would pick), in f64.
fn bf16_argmax(e: &[f32], dim: usize, h: &[f32]) -> u32 {
    let logit = |row: &[f32]| row.iter().zip(h).map(|(&x, &y)| f64::from(bf16::from_f32(x).to_f32()) * f64::from(y)).sum::<f64>();
    let logits: Vec<f64> = e.chunks_exact(dim).map(logit).collect();
    (0..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best }) as u32
}

/// A `vocab × dim` embedding whose rows are all within `spread` (relative) of one row, with
/// row `vocab / 3` copied to two later rows: ties everywhere, and an exact one.
fn crowded(vocab: usize, dim: usize, spread: f32, seed: u64) -> Vec<f32> {
    let base = values(dim, seed);
    let noise = values(vocab * dim, seed + 1);
    let mut e: Vec<f32> = (0..vocab * dim).map(|k| base[k % dim] * (1.0 + spread * noise[k])).collect();
    let top = vocab / 3;
    for copy in [top + 7, vocab - 2] {
        let row = e[top * dim..(top + 1) * dim].to_vec();
        e[copy * dim..(copy + 1) * dim].copy_from_slice(&row);
    }
    e
}

fn screen(e: &[f32], vocab: usize, dim: usize, engine: Engine) -> (ScreenedHead, Tensor<2>) {
    let embed = Tensor::<2>::from_data(TensorData::new(e.to_vec(), [vocab, dim]), &Device::flex());
    (ScreenedHead::new(&embed, engine).expect("an f32 embedding"), embed)
}

/// The engines this CPU runs; AMX needs a CPU (and kernel) that grants it, and its absence is
/// said.
fn engines() -> Vec<Engine> {
    static SAID: std::sync::Once = std::sync::Once::new();
    if !Engine::Amx.available() {
        SAID.call_once(|| eprintln!("SKIPPED for AMX: this CPU or kernel gives no AMX-BF16 (the AVX engine is tested)"));
    }
    [Engine::Avx, Engine::Amx].into_iter().filter(|k| k.available()).collect()
}

#[test]
fn the_screened_argmax_is_the_f32_heads_argmax() {
    let cases = [("independent rows", values(3001 * 64, 7), 3001, 64), ("rows within 2e-3 of one another", crowded(2048, 96, 2e-3, 11), 2048, 96)];
    for ((what, e, vocab, dim), engine) in cases.iter().flat_map(|case| engines().into_iter().map(move |k| (case.clone(), k))) {
        let (head, embed) = screen(&e, vocab, dim, engine);
        for rows in [1, 2, 5, 16, 17, 32, 40] {
            let hidden = values(rows * dim, rows as u64 + 100);
            // Rows 1 and 3 may not repeat their f32 argmax: the runner-up must be found.
            let banned_of = |r: usize| if r % 2 == 1 { vec![reference_argmax(&e, dim, &hidden[r * dim..(r + 1) * dim], &[])] } else { vec![] };
            let got = head.argmax(&embed, &hidden, &banned_of).expect("finite logits are screened");
            for (r, h) in hidden.chunks_exact(dim).enumerate() {
                let want = reference_argmax(&e, dim, h, &banned_of(r));
                assert_eq!(got[r], want, "{engine:?}, {what}, {rows} rows: row {r}");
            }
        }
    }
}

#[test]
fn the_exact_pass_is_needed_and_ties_go_to_the_lowest_id() {
    let (vocab, dim) = (2048, 96);
    let e = crowded(vocab, dim, 2e-3, 11);
    let hidden = values(16 * dim, 3);
    let bf16_differs = hidden.chunks_exact(dim).filter(|h| bf16_argmax(&e, dim, h) != reference_argmax(&e, dim, h, &[])).count();
    // The best row's copies tie with it: the lowest id must win.
    let top = (vocab / 3) as u32;
    let all_but_copies: Vec<u32> = (0..vocab as u32).filter(|&i| i != top && i != top + 7 && i != vocab as u32 - 2).collect();
    for engine in engines() {
        let (head, embed) = screen(&e, vocab, dim, engine);
        for (r, h) in hidden.chunks_exact(dim).enumerate() {
            let got = head.argmax(&embed, h, &|_| all_but_copies.clone()).unwrap();
            assert_eq!(got, vec![top], "{engine:?}, row {r}: three equal rows, the first wins");
        }
    }
    assert!(bf16_differs > 0, "the crowded embedding should defeat a bf16 head alone on some row");
}

#[test]
fn the_chain_is_the_f32_kernels_sum() {
    let (vocab, dim) = (1031, 77);
    let e = values(vocab * dim, 5);
    for isa in [Isa::Avx2, Isa::Avx512].into_iter().filter(|isa| isa.available()) {
        for n in [2, 9, 16, 32] {
            let b = values(dim * n, 9);
            let mut out = vec![0f32; vocab * n];
            // SAFETY: E is vocab × dim row-major, B dim × n row-major, out vocab × n.
            unsafe { skinny::product_with(isa, vocab, n, dim, e.as_ptr(), dim as isize, (b.as_ptr(), n as isize, 1), (out.as_mut_ptr(), n as isize, 1)) };
            for i in 0..vocab {
                for j in 0..n {
                    let column: Vec<f32> = (0..dim).map(|p| b[p * n + j]).collect();
                    assert_eq!(out[i * n + j].to_bits(), chain(&e[i * dim..(i + 1) * dim], &column).to_bits(), "{isa:?}, {n} columns: ({i}, {j})");
                }
            }
        }
    }
}

#[test]
fn a_logit_that_is_not_finite_is_not_screened() {
    let (vocab, dim) = (1500, 32);
    let mut e = values(vocab * dim, 1);
    e[40 * dim] = f32::INFINITY;
    for engine in engines() {
        let (head, embed) = screen(&e, vocab, dim, engine);
        let hidden = values(2 * dim, 2);
        assert!(head.argmax(&embed, &hidden, &|_| vec![]).is_none(), "{engine:?}: an infinite weight leaves the choice to the f32 logits");
        assert!(head.argmax(&embed, &hidden, &|_| vec![40]).is_some(), "{engine:?}: unless its token is banned");
    }
}

#[test]
fn a_head_changed_since_the_screen_was_built_is_not_screened() {
    let (vocab, dim) = (1500, 32);
    let e = values(vocab * dim, 4);
    for engine in engines() {
        let (head, embed) = screen(&e, vocab, dim, engine);
        let hidden = values(3 * dim, 5);
        assert!(head.argmax(&embed, &hidden, &|_| vec![]).is_some());
        let trained = embed.clone() * 1.001;
        assert!(head.argmax(&trained, &hidden, &|_| vec![]).is_none(), "{engine:?}: a screen of the old head must not choose for the new one");
    }
}
