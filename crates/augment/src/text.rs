//! Token-sequence transforms: examples are token ids (as `f32`) padded at the end with a padding
//! id, the layout of `preprocess.text.output: sequence`.

use rand::Rng as _;

use crate::Augmentation;
use crate::config::TokenOp;
use pipeline_core::Rng;

/// Deletes each token with probability `rate` (`kind: token_dropout`); the rest move up and the
/// end is padded, so the length stays.
#[derive(Debug, Clone)]
pub struct TokenDropout(pub TokenOp);

/// Swaps each pair of adjacent tokens with probability `rate` (`kind: token_swap`); a swapped
/// token is not swapped again in the same pass.
#[derive(Debug, Clone)]
pub struct TokenSwap(pub TokenOp);

impl TokenOp {
    fn is_pad(&self, v: f32) -> bool {
        v == self.pad_id as f32
    }

    fn movable(&self, v: f32) -> bool {
        !self.is_pad(v) && !self.keep.iter().any(|&k| k as f32 == v)
    }
}

impl Augmentation for TokenDropout {
    fn apply(&self, x: &mut [f32], _: &[usize], rng: &mut Rng) {
        let op = &self.0;
        let mut kept = 0;
        for i in 0..x.len() {
            let v = x[i];
            if op.is_pad(v) || (op.movable(v) && rng.random::<f64>() < op.rate) {
                continue;
            }
            x[kept] = v;
            kept += 1;
        }
        x[kept..].fill(op.pad_id as f32);
    }
}

impl Augmentation for TokenSwap {
    fn apply(&self, x: &mut [f32], _: &[usize], rng: &mut Rng) {
        let op = &self.0;
        let mut i = 0;
        while i + 1 < x.len() {
            if op.movable(x[i]) && op.movable(x[i + 1]) && rng.random::<f64>() < op.rate {
                x.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn op(rate: f64) -> TokenOp {
        TokenOp { p: 1.0, rate, pad_id: 0, keep: vec![101, 102] }
    }

    const SEQ: [f32; 10] = [101.0, 5.0, 6.0, 7.0, 8.0, 9.0, 102.0, 0.0, 0.0, 0.0];

    #[test]
    fn dropout_deletes_tokens_keeps_order_and_protected_ids() {
        let mut x = SEQ;
        TokenDropout(op(1.0)).apply(&mut x, &[10], &mut Rng::seed_from_u64(0));
        assert_eq!(x, [101.0, 102.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut dropped = 0;
        for seed in 0..50 {
            let mut x = SEQ;
            TokenDropout(op(0.3)).apply(&mut x, &[10], &mut Rng::seed_from_u64(seed));
            let tokens: Vec<f32> = x.iter().copied().filter(|&v| v != 0.0).collect();
            assert_eq!(tokens.first(), Some(&101.0));
            assert_eq!(tokens.last(), Some(&102.0));
            let mut rest = SEQ.iter();
            assert!(tokens.iter().all(|t| rest.any(|s| s == t)), "order kept: {tokens:?}");
            assert!(x[tokens.len()..].iter().all(|&v| v == 0.0), "padded at the end");
            dropped += 7 - tokens.len();
        }
        // 5 droppable tokens × 50 sequences × 0.3 = 75 expected.
        assert!((50..=100).contains(&dropped), "{dropped}");
    }

    #[test]
    fn swap_moves_only_adjacent_tokens() {
        let mut x = SEQ;
        TokenSwap(op(1.0)).apply(&mut x, &[10], &mut Rng::seed_from_u64(0));
        assert_eq!(x, [101.0, 6.0, 5.0, 8.0, 7.0, 9.0, 102.0, 0.0, 0.0, 0.0]);
        for seed in 0..20 {
            let mut x = SEQ;
            TokenSwap(op(0.5)).apply(&mut x, &[10], &mut Rng::seed_from_u64(seed));
            let mut sorted = x;
            sorted[1..6].sort_by(f32::total_cmp);
            assert_eq!(sorted, SEQ, "a permutation of the movable tokens");
            assert!(
                x.iter()
                    .enumerate()
                    .all(|(i, v)| SEQ.iter().position(|s| s == v).unwrap().abs_diff(i) <= 1 || *v == 0.0)
            );
        }
    }
}
