//! The fused embedding sum (`pretext::model::ops::embed` on the CPU) against dfdx's gathers and
//! adds (`embed_unfused`): the output and every table's gradient bit for bit, with tokens that
//! repeat (so a table row receives several contributions, in token order), and the same bits
//! on one thread and on three.

use dfdx::prelude::*;
use pretext::model::ops::{embed, embed_unfused};
use pretext::model::{Dev, Matrix, TrainTape};
use pretext::rng::stream;
use rand::Rng;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = stream(seed, "embedding-test");
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Output and the gradients of the three tables, from the fused op or the reference.
fn run(fused: bool) -> Vec<Vec<u32>> {
    let dev = Dev::seed_from_u64(0);
    let (vocab, positions, h, n) = (50, 16, 24, 77);
    let word: Matrix = dev.tensor_from_vec(random(vocab * h, 1), (vocab, h));
    let position: Matrix = dev.tensor_from_vec(random(positions * h, 2), (positions, h));
    let types: Matrix = dev.tensor_from_vec(random(2 * h, 3), (2, h));
    let r: Matrix = dev.tensor_from_vec(random(n * h, 4), (n, h));
    let mut rng = stream(5, "embedding-test-ids");
    // Few distinct ids, so most rows of the word table get several tokens' gradients.
    let ids: Vec<usize> = (0..n).map(|_| rng.gen_range(0..7)).collect();
    let pos: Vec<usize> = (0..n).map(|i| i % positions).collect();
    let kinds: Vec<usize> = (0..n).map(|i| (i / 5) % 2).collect();
    let tables = [
        (&word, &ids[..]),
        (&position, &pos[..]),
        (&types, &kinds[..]),
    ];
    let tape = TrainTape::default();
    let y = if fused {
        embed(tape, &dev, &tables)
    } else {
        embed_unfused(tape, &dev, &tables)
    };
    let out = y.as_vec();
    let g = (y * r).sum::<Rank0, _>().backward();
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    vec![
        bits(out),
        bits(g.get(&word).as_vec()),
        bits(g.get(&position).as_vec()),
        bits(g.get(&types).as_vec()),
    ]
}

#[test]
fn fused_embedding_sum_equals_dfdx_bit_for_bit_on_any_thread_count() {
    let reference = run(false);
    for (what, v) in ["output", "dword", "dposition", "dtype"]
        .iter()
        .zip(&reference)
    {
        assert!(
            v.iter().any(|&b| b != 0),
            "{what}: all zeros, nothing compared"
        );
    }
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let fused = pool.install(|| run(true));
        for (i, what) in ["output", "dword", "dposition", "dtype"].iter().enumerate() {
            let first = fused[i].iter().zip(&reference[i]).position(|(a, b)| a != b);
            assert_eq!(
                first, None,
                "{what} on {threads} thread(s): first differing element"
            );
        }
    }
}
