//! `pretext bench --gemm`: the matrix products one training step of a shape runs, each timed
//! alone in f32 (the `gemm` crate) and in bf16 (`gemm_bf16`), in GFLOP/s. This is where a
//! step's arithmetic goes, so it is the figure to hold against a BLAS on the same shapes
//! (`benches/gemm_compare.py` times PyTorch's `matmul` on the same list).

use super::Shape;
use crate::model::fused::gemm::{matmul, Into, View};
use crate::model::fused::gemm_bf16;
use crate::model::precision::Precision;
use std::time::Instant;

/// One product: `(m × k) · (k × n)`, with A and/or B read transposed as the layer reads them,
/// on all threads or (attention, one task per sequence) on one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Product {
    pub name: String,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_t: bool,
    pub b_t: bool,
    pub parallel: bool,
}

/// The products of one step of `s`: per linear layer its forward (`x Wᵀ`), input gradient
/// (`g W`) and weight gradient (`gᵀ x`), the MLM decoder's on the masked positions; and one of
/// each shape of attention's per-head products (`Q Kᵀ`; `P V` and `dS K`; `Pᵀ dC` and `dSᵀ Q`).
pub fn products(s: &Shape) -> Vec<Product> {
    let tokens = s.batch * s.seq;
    let masked = (tokens as f64 * super::MASK_RATE).round() as usize;
    let p = |name: &str, (m, k, n): (usize, usize, usize), a_t, b_t, parallel| Product {
        name: name.into(),
        m,
        k,
        n,
        a_t,
        b_t,
        parallel,
    };
    let mut out = Vec::new();
    for (layer, d_in, d_out) in [
        ("attn proj", s.hidden, s.hidden),
        ("ffn up", s.hidden, s.ffn),
        ("ffn down", s.ffn, s.hidden),
        ("decoder", s.hidden, s.vocab),
    ] {
        let rows = if layer == "decoder" { masked } else { tokens };
        out.push(p(
            &format!("{layer} x·Wᵀ"),
            (rows, d_in, d_out),
            false,
            true,
            true,
        ));
        out.push(p(
            &format!("{layer} g·W"),
            (rows, d_out, d_in),
            false,
            false,
            true,
        ));
        out.push(p(
            &format!("{layer} gᵀ·x"),
            (d_out, rows, d_in),
            true,
            false,
            true,
        ));
    }
    let d = s.hidden / s.heads;
    out.push(p(
        "attn Q·Kᵀ (per head)",
        (s.seq, d, s.seq),
        false,
        true,
        false,
    ));
    out.push(p(
        "attn P·V (per head)",
        (s.seq, s.seq, d),
        false,
        false,
        false,
    ));
    out.push(p(
        "attn Pᵀ·dC (per head)",
        (s.seq, s.seq, d),
        true,
        false,
        false,
    ));
    out
}

/// A product timed in both precisions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timed {
    pub product: Product,
    pub f32_gflops: f64,
    /// `None` where the CPU lacks AVX512-BF16.
    pub bf16_gflops: Option<f64>,
}

/// Times every product of `s`, repeating each for about `seconds` per precision.
pub fn run(s: &Shape, seconds: f64) -> Vec<Timed> {
    products(s)
        .into_iter()
        .map(|p| Timed {
            f32_gflops: time(&p, Precision::Fp32, seconds),
            bf16_gflops: gemm_bf16::native().then(|| time(&p, Precision::Bf16, seconds)),
            product: p,
        })
        .collect()
}

fn time(p: &Product, precision: Precision, seconds: f64) -> f64 {
    let fill = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + salt) % 13) as f32 * 0.1 - 0.6)
            .collect()
    };
    let (a, b) = (fill(p.m * p.k, 1), fill(p.k * p.n, 2));
    let mut c = vec![0.0f32; p.m * p.n];
    let av = match p.a_t {
        false => View::new(&a, 0, (p.m, p.k), p.k),
        true => View::new(&a, 0, (p.k, p.m), p.m).t(),
    };
    let bv = match p.b_t {
        false => View::new(&b, 0, (p.k, p.n), p.n),
        true => View::new(&b, 0, (p.n, p.k), p.k).t(),
    };
    let mut once = || {
        matmul(
            &mut c,
            0,
            p.n,
            av,
            bv,
            1.0,
            Into::Overwrite,
            p.parallel,
            precision,
        )
    };
    once();
    let (started, mut reps) = (Instant::now(), 0u32);
    while reps < 3 || started.elapsed().as_secs_f64() < seconds {
        once();
        reps += 1;
    }
    let flops = 2.0 * (p.m * p.k * p.n) as f64 * reps as f64;
    flops / started.elapsed().as_secs_f64() / 1e9
}

/// The table `pretext bench --gemm` prints.
pub fn describe(timed: &[Timed]) -> String {
    let mut s = format!(
        "{:<24} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>6}\n",
        "product", "m", "k", "n", "f32 GF/s", "bf16 GF/s", "ratio"
    );
    for t in timed {
        let p = &t.product;
        let (bf, ratio) = match t.bf16_gflops {
            Some(b) => (format!("{b:.0}"), format!("{:.2}", b / t.f32_gflops)),
            None => ("—".into(), "—".into()),
        };
        s += &format!(
            "{:<24} {:>6} {:>6} {:>6}  {:>10.0} {:>10} {:>6}\n",
            p.name, p.m, p.k, p.n, t.f32_gflops, bf, ratio
        );
    }
    s
}
