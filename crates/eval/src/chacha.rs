//! Reading the words of a [`pipeline_core::Rng`] without the `rand` traits.
//!
//! `eval` does not depend on `rand`, so the `RngCore` methods of [`Rng`] (ChaCha8) cannot be
//! named here. Its inherent methods give its key, stream and word position, which is all the
//! ChaCha8 block function needs: [`Words`] computes the same 32-bit words `Rng::next_u32`
//! would return, in the same order, and moves the generator past the words it used. (Checked
//! against `rand_chacha` 0.9's `ChaCha8Rng`; see the pinned words in the tests.)

use pipeline_core::Rng;

/// The words of a generator's stream, from its current position.
pub(crate) struct Words<'a> {
    rng: &'a mut Rng,
    key: [u32; 8],
    stream: u64,
    pos: u128,
    block_no: Option<u64>,
    block: [u32; 16],
}

impl<'a> Words<'a> {
    /// Reads `rng`'s words from where it stands; when dropped, `rng` stands after the last word
    /// read, as if they had been drawn from it.
    pub(crate) fn new(rng: &'a mut Rng) -> Self {
        let seed = rng.get_seed();
        let mut key = [0u32; 8];
        for (k, bytes) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let (stream, pos) = (rng.get_stream(), rng.get_word_pos());
        Self { rng, key, stream, pos, block_no: None, block: [0; 16] }
    }

    /// The next word (`RngCore::next_u32`).
    pub(crate) fn next_u32(&mut self) -> u32 {
        // The block counter is 64 bits; the stream cycles after 2^68 words.
        let block_no = (self.pos / 16) as u64;
        if self.block_no != Some(block_no) {
            self.block = chacha8_block(&self.key, block_no, self.stream);
            self.block_no = Some(block_no);
        }
        let word = self.block[(self.pos % 16) as usize];
        self.pos = (self.pos + 1) % (1u128 << 68);
        word
    }

    /// The next two words, the first as the low half (`RngCore::next_u64`).
    pub(crate) fn next_u64(&mut self) -> u64 {
        let low = u64::from(self.next_u32());
        low | (u64::from(self.next_u32()) << 32)
    }

    /// A uniform integer below `n` (`n > 0`), without bias: Lemire's multiply-and-reject.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let n = n.max(1);
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

impl Drop for Words<'_> {
    fn drop(&mut self) {
        self.rng.set_word_pos(self.pos);
    }
}

/// The 16 words of ChaCha block `counter` of `stream` under `key`, with 8 rounds.
fn chacha8_block(key: &[u32; 8], counter: u64, stream: u64) -> [u32; 16] {
    let mut input = [0u32; 16];
    input[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    input[4..12].copy_from_slice(key);
    input[12] = counter as u32;
    input[13] = (counter >> 32) as u32;
    input[14] = stream as u32;
    input[15] = (stream >> 32) as u32;
    let mut x = input;
    let quarter = |x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    };
    for _ in 0..4 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for (o, i) in x.iter_mut().zip(input) {
        *o = o.wrapping_add(i);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first words of `pipeline_core::rng(42, "bootstrap")` as `rand_chacha` 0.9.0 draws
    /// them (`next_u32` eight times, then `next_u64` after `set_word_pos(1000)`), printed by a
    /// scratch crate depending on `rand_chacha = "=0.9.0"` with `pipeline_core`'s seeding. The
    /// same crate compared [`Words`] with `ChaCha8Rng` on 180,000 mixed `next_u32` /
    /// `next_u64` draws (50 seeds, start positions across block and buffer boundaries, a
    /// non-zero stream) and the generator's position afterwards: all identical.
    #[test]
    fn matches_rand_chacha() {
        let mut rng = pipeline_core::rng(42, "bootstrap");
        {
            let mut w = Words::new(&mut rng);
            let words: Vec<u32> = (0..8).map(|_| w.next_u32()).collect();
            assert_eq!(words, FIRST_WORDS);
        }
        assert_eq!(rng.get_word_pos(), 8);
        rng.set_word_pos(1000);
        let mut w = Words::new(&mut rng);
        assert_eq!(w.next_u64(), AT_1000);
        drop(w);
        assert_eq!(rng.get_word_pos(), 1002);
    }

    const FIRST_WORDS: [u32; 8] =
        [2366334202, 2115923367, 1424532448, 3067526778, 812316193, 2061360443, 3708673298, 3726936845];
    const AT_1000: u64 = 9797654176318124198;

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = pipeline_core::rng(1, "t");
        let mut w = Words::new(&mut rng);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[w.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(w.below(1), 0);
    }
}
