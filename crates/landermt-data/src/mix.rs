//! A deterministic 64-bit mix (SplitMix64's finaliser): data order, template draws, random
//! units and initialisations are functions of a seed and a position, so no RNG state needs
//! saving for a killed run to resume to the same result.

/// SplitMix64's finaliser of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    /// SplitMix64's published first outputs for seed 0 (state advanced by the golden gamma).
    #[test]
    fn it_is_splitmix64() {
        assert_eq!(super::mix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(super::mix(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }
}
