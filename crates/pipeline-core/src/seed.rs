//! Seeding: one seed in the config, one independent random stream per purpose.
//!
//! Every random choice of the pipeline (the split, weight initialisation, shuffling, dropout,
//! augmentation) draws from its own stream, named by a string: `rng(seed, "split")`. Adding a
//! new consumer of randomness therefore never changes the draws of the others, and the same
//! config gives the same run.
//!
//! [`Rng`] is ChaCha8: portable (the same numbers on every platform), seekable, and serializable
//! for checkpoints.

use rand::SeedableRng;

/// The pipeline's random number generator.
pub type Rng = rand_chacha::ChaCha8Rng;

/// Mixes a base seed with a stream name into a new 64-bit seed (FNV-1a over the name, then the
/// SplitMix64 finaliser). Stable across versions: changing it changes every run's results.
pub fn derive_seed(seed: u64, stream: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream `stream` of `seed`.
pub fn rng(seed: u64, stream: &str) -> Rng {
    Rng::seed_from_u64(derive_seed(seed, stream))
}

#[cfg(test)]
mod tests {
    use rand::Rng as _;

    use super::*;

    #[test]
    fn streams_are_stable_and_independent() {
        assert_eq!(derive_seed(42, "split"), derive_seed(42, "split"));
        assert_ne!(derive_seed(42, "split"), derive_seed(42, "init"));
        assert_ne!(derive_seed(42, "split"), derive_seed(43, "split"));
        let (mut r1, mut r2) = (rng(7, "x"), rng(7, "x"));
        let a: Vec<u32> = (0..4).map(|_| r1.random()).collect();
        let b: Vec<u32> = (0..4).map(|_| r2.random()).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        // Pinned value: a change here changes every run's results, so it must be deliberate.
        // Independent check: the same arithmetic in Python gives these values.
        assert_eq!(derive_seed(0, ""), 0xc381_7c01_6ba4_ff30);
        assert_eq!(derive_seed(42, "split"), 0x9dee_72c6_ab27_0651);
    }
}
