//! `rng::words_at` (sixteen ChaCha blocks at a time in AVX-512 registers where the CPU has
//! them) gives `rand_chacha`'s words bit for bit: from any word, across the block counter's
//! 32-bit carry, on other streams, for any length.

use pretext::rng::{stream, words_at, Rng};
use rand::{Rng as _, RngCore, SeedableRng};

fn reference(rng: &Rng, start: u128, len: usize) -> Vec<u32> {
    let mut r = rng.clone();
    r.set_word_pos(start);
    (0..len).map(|_| r.next_u32()).collect()
}

#[test]
fn words_at_equals_rand_chacha() {
    let mut pick = Rng::seed_from_u64(7);
    let carry = (1u128 << 32) * 16 - 40;
    let mut rngs = vec![stream(1, "model.dropout"), stream(2, "data.masking")];
    let mut other = stream(3, "x");
    other.set_stream(0xdead_beef_0123_4567);
    rngs.push(other);
    for rng in &rngs {
        let mut starts = vec![0u128, 1, 15, 16, 17, 255, 256, 257, carry, carry + 7];
        starts.extend((0..20).map(|_| pick.gen_range(0..1u128 << 40)));
        for start in starts {
            for len in [
                0,
                1,
                15,
                16,
                17,
                255,
                256,
                257,
                1000,
                pick.gen_range(0..3000),
            ] {
                let mut got = vec![0u32; len];
                words_at(rng, start, &mut got);
                assert_eq!(got, reference(rng, start, len), "start {start}, len {len}");
            }
        }
    }
}
