//! The bf16 head's product on AMX (Intel's tile unit), for the screened head
//! ([`crate::screen`]).
//!
//! `tdpbf16ps` multiplies a 16 × 32 bf16 tile by a 32 × 16 one into 16 × 16 f32 sums: 8,192
//! multiply-adds an instruction, against 32 for an AVX-512 FMA. The products of bf16 values are
//! exact in f32, so each output is an f32 sum of d exact terms, as on AVX-512, except that
//! subnormal inputs count as zero and subnormal results are flushed to zero (the screen's bound
//! allows for both). With the arithmetic this cheap, the head is read at the memory's speed.
//!
//! The hidden rows are rounded to bf16 for the tiles: B holds, for each group of 32 of the
//! hidden size, 16 rows of pairs `(ĥ_n[2k], ĥ_n[2k+1])` for the 16 hidden rows n. The head's
//! rows are read in place from the row-major bf16 copy, 32 rows (two A tiles) at a time.
//!
//! Linux gives a process the tile registers only on request (`arch_prctl`); [`available`] asks
//! once. Stable Rust has no AMX intrinsics, so the tile instructions are written in `asm!`.

use half::bf16;
use rayon::prelude::*;

/// Head rows per block: two A tiles.
pub const BLOCK_ROWS: usize = 32;
/// Hidden rows per B tile.
const TILE_COLUMNS: usize = 16;
/// The most hidden rows one product takes: two B tiles.
pub const MAX_COLUMNS: usize = 32;
/// The hidden size one tile covers.
const DEPTH: usize = 32;
/// Blocks per rayon task.
const TASK_BLOCKS: usize = 128;

/// Whether this CPU and kernel run [`product`]: AMX-TILE and AMX-BF16 in CPUID, and Linux's
/// permission for the tile data granted. `LANDERMT_AMX=0` says no, to compare with AVX-512.
pub fn available() -> bool {
    static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GRANTED.get_or_init(|| std::env::var("LANDERMT_AMX").map_or(true, |v| v != "0") && has_amx_bf16() && request_tiles())
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn has_amx_bf16() -> bool {
    // CPUID.(EAX=7, ECX=0):EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    edx & (1 << 22) != 0 && edx & (1 << 24) != 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn has_amx_bf16() -> bool {
    false
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: 0 where the kernel grants the tiles.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tiles() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_tiles() -> bool {
    false
}

/// Whether [`product`] takes a head of hidden size `dim`.
pub fn fits(dim: usize) -> bool {
    dim.is_multiple_of(DEPTH) && dim > 0
}

/// The hidden rows rounded to bf16 as B tiles (module docs); subnormals become zero, as the
/// tiles would read them. Returns the tiles and ĥ, row-major.
pub fn pack(hidden: &[f32], dim: usize) -> (Vec<bf16>, Vec<f32>) {
    let n = hidden.len() / dim;
    assert!(n <= MAX_COLUMNS && fits(dim), "{n} hidden rows of {dim} do not fit the tiles");
    let rounded: Vec<f32> = hidden.iter().map(|&x| flush(bf16::from_f32(x)).to_f32()).collect();
    let tiles_per_side = n.div_ceil(TILE_COLUMNS).max(1);
    // Tile (group g, side s): 16 pair-rows of 16 columns × 2.
    let mut tiles = vec![bf16::ZERO; dim / DEPTH * tiles_per_side * DEPTH * TILE_COLUMNS];
    for (c, row) in rounded.chunks_exact(dim).enumerate() {
        let (side, column) = (c / TILE_COLUMNS, c % TILE_COLUMNS);
        for (k, &v) in row.iter().enumerate() {
            let (group, within) = (k / DEPTH, k % DEPTH);
            let tile = (group * tiles_per_side + side) * DEPTH * TILE_COLUMNS;
            tiles[tile + (within / 2) * 2 * TILE_COLUMNS + column * 2 + within % 2] = bf16::from_f32(v);
        }
    }
    (tiles, rounded)
}

/// A bf16 value with a subnormal replaced by zero of its sign.
pub fn flush(x: bf16) -> bf16 {
    if x.to_bits() & 0x7F80 == 0 && x.to_bits() & 0x7F != 0 { bf16::from_bits(x.to_bits() & 0x8000) } else { x }
}

/// `out[i·width + n] = Σ_k head[i, k] · ĥ_n[k]` for head rows `0..rows / 32 · 32` and the
/// `columns` hidden rows packed in `tiles` ([`pack`]), with `width` 16 for up to 16 columns
/// and 32 above; columns past `columns` are written with zeros' sums. Rows past the last whole
/// block are left to the caller.
///
/// # Panics
/// If [`available`] is false, the shapes do not fit, or `out` is too short.
pub fn product(head: &[bf16], rows: usize, dim: usize, tiles: &[bf16], columns: usize, out: &mut [f32]) {
    assert!(available(), "this CPU has no AMX-BF16");
    let width = width(columns);
    let blocks = rows / BLOCK_ROWS;
    assert!(fits(dim) && head.len() >= rows * dim && out.len() >= blocks * BLOCK_ROWS * width, "the product's buffers do not fit");
    assert!(tiles.len() == dim / DEPTH * (width / TILE_COLUMNS) * DEPTH * TILE_COLUMNS, "the B tiles are not for {columns} hidden rows");
    let (head_at, tiles_at, out_at) = (head.as_ptr() as usize, tiles.as_ptr() as usize, out.as_mut_ptr() as usize);
    (0..blocks.div_ceil(TASK_BLOCKS)).into_par_iter().for_each(|task| {
        let config = Config::new();
        // SAFETY: AMX is available (asserted); the configuration is valid.
        unsafe { config.load() };
        for b in task * TASK_BLOCKS..blocks.min((task + 1) * TASK_BLOCKS) {
            let a = (head_at as *const bf16).wrapping_add(b * BLOCK_ROWS * dim);
            let o = (out_at as *mut f32).wrapping_add(b * BLOCK_ROWS * width);
            // SAFETY: rows b·32.. of the head (dim each), all of `tiles`, and rows b·32.. of
            // `out` (width each) lie inside the buffers (asserted); tasks write disjoint rows.
            unsafe { block(a, dim, tiles_at as *const bf16, width / TILE_COLUMNS, o) };
        }
        // SAFETY: gives the tile state back (no operands).
        unsafe { std::arch::asm!("tilerelease", options(nostack)) };
    });
}

/// The row width of [`product`]'s output for `columns` hidden rows.
pub fn width(columns: usize) -> usize {
    if columns <= TILE_COLUMNS { TILE_COLUMNS } else { MAX_COLUMNS }
}

/// The tile configuration: palette 1, every tile 16 rows of 64 bytes (tmm0–3 sums, tmm4–5 the
/// head's rows, tmm6–7 the hidden rows).
#[repr(C, align(64))]
struct Config([u8; 64]);

impl Config {
    fn new() -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        for tile in 0..8 {
            bytes[16 + 2 * tile] = 64;
            bytes[48 + tile] = 16;
        }
        Self(bytes)
    }

    /// # Safety
    /// AMX must be available and granted.
    unsafe fn load(&self) {
        // SAFETY: the caller's contract; 64 bytes of a valid palette-1 configuration.
        unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) };
    }
}

/// 32 head rows × 16 (`sides` 1) or 32 (`sides` 2) hidden rows: two A tiles (tmm4–5), one B
/// tile per side (tmm6–7), and the sums of A tile t and side s in tmm(2t + s).
///
/// # Safety
/// A loaded configuration; `a` valid for 32 rows of `dim`, `b` for `dim / 32 · sides` B tiles,
/// `out` for 32 rows of `16 · sides` floats.
unsafe fn block(a: *const bf16, dim: usize, b: *const bf16, sides: usize, out: *mut f32) {
    let (stride, tile, width) = (dim * 2, DEPTH * TILE_COLUMNS, TILE_COLUMNS * sides);
    // SAFETY: the caller's contract, tile by tile.
    unsafe {
        std::arch::asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        for group in 0..dim / DEPTH {
            std::arch::asm!(
                "tileloadd tmm4, [{a0} + {stride}*1]",
                "tileloadd tmm5, [{a1} + {stride}*1]",
                "tileloadd tmm6, [{b0} + {sixty_four}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm2, tmm5, tmm6",
                a0 = in(reg) a.wrapping_add(group * DEPTH),
                a1 = in(reg) a.wrapping_add(16 * dim + group * DEPTH),
                b0 = in(reg) b.wrapping_add(sides * group * tile),
                stride = in(reg) stride,
                sixty_four = in(reg) 64usize,
                options(nostack, readonly),
            );
            if sides == 2 {
                std::arch::asm!(
                    "tileloadd tmm7, [{b1} + {sixty_four}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    b1 = in(reg) b.wrapping_add((2 * group + 1) * tile),
                    sixty_four = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
        }
        let row_bytes = width * 4;
        std::arch::asm!(
            "tilestored [{top} + {row}*1], tmm0",
            "tilestored [{low} + {row}*1], tmm2",
            top = in(reg) out,
            low = in(reg) out.wrapping_add(16 * width),
            row = in(reg) row_bytes,
            options(nostack),
        );
        if sides == 2 {
            std::arch::asm!(
                "tilestored [{top} + {row}*1], tmm1",
                "tilestored [{low} + {row}*1], tmm3",
                top = in(reg) out.wrapping_add(TILE_COLUMNS),
                low = in(reg) out.wrapping_add(16 * width + TILE_COLUMNS),
                row = in(reg) row_bytes,
                options(nostack),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Against the f64 sums of the same bf16 values: each output within the rounding of a
    /// d-term f32 sum, and the columns in their places, for 1 to 32 hidden rows.
    #[test]
    fn the_tiles_give_the_bf16_dot_products() {
        if !available() {
            eprintln!("SKIPPED: this CPU (or kernel) gives no AMX-BF16; the screened head uses AVX there");
            return;
        }
        let (rows, dim) = (96 + 7, 64);
        let head: Vec<bf16> = values(rows * dim, 1).iter().map(|&x| bf16::from_f32(x)).collect();
        for n in [1, 5, 16, 17, 32] {
            let hidden = values(n * dim, n as u64);
            let (tiles, rounded) = pack(&hidden, dim);
            let width = width(n);
            let mut out = vec![f32::NAN; rows / BLOCK_ROWS * BLOCK_ROWS * width];
            product(&head, rows, dim, &tiles, n, &mut out);
            for i in 0..rows / BLOCK_ROWS * BLOCK_ROWS {
                for c in 0..width {
                    let want: f64 = if c < n { (0..dim).map(|k| head[i * dim + k].to_f64() * f64::from(rounded[c * dim + k])).sum() } else { 0.0 };
                    let scale: f64 = if c < n { (0..dim).map(|k| (head[i * dim + k].to_f64() * f64::from(rounded[c * dim + k])).abs()).sum() } else { 0.0 };
                    let got = f64::from(out[i * width + c]);
                    assert!((got - want).abs() <= scale * dim as f64 * 2f64.powi(-24) + 1e-30, "{n} columns, ({i}, {c}): {got} against {want}");
                }
            }
        }
    }
}
