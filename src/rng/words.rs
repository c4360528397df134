//! A stream's words from any position, sixteen ChaCha blocks at a time in AVX-512 registers.
//!
//! Dropout draws one word per element: about 18 M words a step on the reference shape, which
//! `rand_chacha` (its AVX2 path: four blocks per call, rotations by shuffles) made in about
//! 1 ns a word, 4 % of a bf16 step. AVX-512 has a rotate instruction and room for sixteen
//! blocks side by side, one register per state word. The words are `rand_chacha`'s own: the
//! same key (the seed), block counter and stream, so every dropout mask is unchanged
//! (`tests/rng_words.rs` checks them against `rand_chacha` at many positions).

use super::Rng;
use rand::Rng as _;

/// ChaCha8: four double rounds.
const DOUBLE_ROUNDS: usize = 4;
/// Blocks made at once, one per lane.
const LANES: usize = 16;
/// Words of a ChaCha block.
const BLOCK: usize = 16;

/// Writes the `out.len()` words of `rng`'s stream from word `start` on: what a clone of
/// `rng` gives after `set_word_pos(start)` and `fill(out)`. `rng` itself does not move.
pub fn words_at(rng: &Rng, start: u128, out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        let key = key_words(rng);
        let stream = rng.get_stream();
        let mut block = (start / BLOCK as u128) as u64;
        let mut skip = (start % BLOCK as u128) as usize;
        let mut made = [0u32; LANES * BLOCK];
        let mut out = out;
        while !out.is_empty() {
            // SAFETY: AVX-512F is present (checked above).
            unsafe { blocks(&key, stream, block, &mut made) };
            let take = (made.len() - skip).min(out.len());
            out[..take].copy_from_slice(&made[skip..skip + take]);
            out = &mut out[take..];
            block = block.wrapping_add(LANES as u64);
            skip = 0;
        }
        return;
    }
    let mut r = rng.clone();
    r.set_word_pos(start);
    r.fill(out);
}

/// The seed as ChaCha's eight key words (little-endian, as `rand_chacha` reads it).
fn key_words(rng: &Rng) -> [u32; 8] {
    let seed = rng.get_seed();
    std::array::from_fn(|i| u32::from_le_bytes(seed[4 * i..4 * i + 4].try_into().unwrap()))
}

/// Blocks `block .. block + 16` of the stream, in order, into `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn blocks(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; LANES * BLOCK]) {
    use std::arch::x86_64::*;
    let splat = |w: u32| _mm512_set1_epi32(w as i32);
    // The 64-bit block counter of each lane, as its low and high words.
    let counters: [u64; LANES] = std::array::from_fn(|l| block.wrapping_add(l as u64));
    let low: [u32; LANES] = counters.map(|c| c as u32);
    let high: [u32; LANES] = counters.map(|c| (c >> 32) as u32);
    // "expand 32-byte k", the key, the counter, the stream: word j of every lane's state.
    let init: [__m512i; BLOCK] = [
        splat(0x6170_7865),
        splat(0x3320_646e),
        splat(0x7962_2d32),
        splat(0x6b20_6574),
        splat(key[0]),
        splat(key[1]),
        splat(key[2]),
        splat(key[3]),
        splat(key[4]),
        splat(key[5]),
        splat(key[6]),
        splat(key[7]),
        _mm512_loadu_si512(low.as_ptr().cast()),
        _mm512_loadu_si512(high.as_ptr().cast()),
        splat(stream as u32),
        splat((stream >> 32) as u32),
    ];
    let mut x = init;
    for _ in 0..DOUBLE_ROUNDS {
        quarter(&mut x, [0, 4, 8, 12]);
        quarter(&mut x, [1, 5, 9, 13]);
        quarter(&mut x, [2, 6, 10, 14]);
        quarter(&mut x, [3, 7, 11, 15]);
        quarter(&mut x, [0, 5, 10, 15]);
        quarter(&mut x, [1, 6, 11, 12]);
        quarter(&mut x, [2, 7, 8, 13]);
        quarter(&mut x, [3, 4, 9, 14]);
    }
    for (v, i) in x.iter_mut().zip(init) {
        *v = _mm512_add_epi32(*v, i);
    }
    // Register j holds word j of the sixteen blocks; transposed, register l is block l.
    crate::simd::transpose16(&mut x);
    for (l, v) in x.iter().enumerate() {
        _mm512_storeu_si512(out[l * BLOCK..].as_mut_ptr().cast(), *v);
    }
}

/// ChaCha's quarter round on state words `a, b, c, d` of every lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quarter(x: &mut [std::arch::x86_64::__m512i; BLOCK], [a, b, c, d]: [usize; 4]) {
    use std::arch::x86_64::*;
    x[a] = _mm512_add_epi32(x[a], x[b]);
    x[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[d], x[a]));
    x[c] = _mm512_add_epi32(x[c], x[d]);
    x[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[b], x[c]));
    x[a] = _mm512_add_epi32(x[a], x[b]);
    x[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[d], x[a]));
    x[c] = _mm512_add_epi32(x[c], x[d]);
    x[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[b], x[c]));
}
