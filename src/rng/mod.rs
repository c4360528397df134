//! Named random streams. Every random choice of a run draws from a stream derived from the
//! run's seed and a fixed name (`data.split`, `data.sampler`, `data.masking`, `model.init`,
//! `model.dropout`), so adding randomness in one place never shifts another, and a stream's
//! state can be saved in a checkpoint and restored exactly.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub type Rng = ChaCha8Rng;

/// The stream `name` of the run seeded with `seed`.
pub fn stream(seed: u64, name: &str) -> Rng {
    // FNV-1a over the name, mixed with the seed by SplitMix64 so nearby seeds diverge.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Rng::seed_from_u64(z)
}

mod words;
pub use words::words_at;
