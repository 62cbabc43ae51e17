//! The mutations: a copy of a random seed, changed one to four times.

/// Integers that break size arithmetic: zero, one, the edges of u32 and u64, powers of two.
const INTERESTING: [u64; 10] = [0, 1, 0x7f, 0xff, 0xffff_ffff, 1 << 31, 1 << 32, 1 << 62, u64::MAX / 2, u64::MAX];

pub struct Mutator {
    rng: fastrand::Rng,
    /// Format tokens to insert (`[`, `\t`, `null`, …).
    tokens: &'static [&'static str],
}

impl Mutator {
    pub fn new(seed: u64, tokens: &'static [&'static str]) -> Self {
        Mutator { rng: fastrand::Rng::with_seed(seed), tokens }
    }

    /// A mutated copy of one of `seeds`.
    pub fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut input = seeds[self.rng.usize(..seeds.len())].clone();
        for _ in 0..self.rng.usize(1..=4) {
            self.once(&mut input, seeds);
        }
        input
    }

    /// An offset, biased to the first 512 bytes where headers live.
    fn offset(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else if self.rng.u8(..) < 180 {
            self.rng.usize(..len.min(512))
        } else {
            self.rng.usize(..len)
        }
    }

    fn once(&mut self, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = input.len();
        match self.rng.u8(..9) {
            0 if len > 0 => {
                let at = self.offset(len);
                input[at] ^= 1 << self.rng.u8(..8);
            }
            1 if len > 0 => {
                let at = self.offset(len);
                input[at] = [0u8, 1, 0x7f, 0x80, 0xff][self.rng.usize(..5)];
            }
            2 if len >= 8 => {
                // A header field: 4 or 8 little-endian bytes, on an aligned offset mostly.
                let width = if self.rng.bool() { 8 } else { 4 };
                let mut at = self.offset(len - width + 1).min(len - width);
                if self.rng.u8(..) < 200 {
                    at -= at % 4;
                }
                let value = INTERESTING[self.rng.usize(..INTERESTING.len())].wrapping_add(self.rng.u64(..3)).wrapping_sub(1);
                input[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            3 if len > 0 => {
                let at = self.offset(len);
                let n = self.rng.usize(1..=64).min(len - at);
                input.drain(at..at + n);
            }
            4 => {
                let at = self.offset(len + 1).min(len);
                let bytes: Vec<u8> = (0..self.rng.usize(1..=16)).map(|_| self.rng.u8(..)).collect();
                input.splice(at..at, bytes);
            }
            5 if len > 0 => {
                // Repeat a range (lists and arrays grow).
                let at = self.rng.usize(..len);
                let n = self.rng.usize(1..=256).min(len - at);
                let copy = input[at..at + n].to_vec();
                input.splice(at..at, copy);
            }
            6 if len > 0 => input.truncate(self.rng.usize(..len)),
            7 if !self.tokens.is_empty() => {
                let at = self.offset(len + 1).min(len);
                let token = self.tokens[self.rng.usize(..self.tokens.len())].as_bytes().to_vec();
                input.splice(at..at, token);
            }
            _ => {
                // Splice in a piece of another seed.
                let other = &seeds[self.rng.usize(..seeds.len())];
                if !other.is_empty() {
                    let from = self.rng.usize(..other.len());
                    let n = self.rng.usize(1..=128).min(other.len() - from);
                    let at = self.offset(len + 1).min(len);
                    input.splice(at..at, other[from..from + n].iter().copied());
                }
            }
        }
    }
}
