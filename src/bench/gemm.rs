//! `pretext bench --gemm`: the matrix products one training step of a shape runs, each timed
//! alone in f32 (the `gemm` crate) and in bf16 (`gemm_bf16`), in GFLOP/s. This is where a
//! step's arithmetic goes, so it is the figure to hold against a BLAS on the same shapes
//! (`benches/gemm_compare.py` times PyTorch's `matmul` on the same list). bf16 is timed twice:
//! with f32 operands (rounded as they are packed) and with the operands a bf16 step holds
//! rounded already (`gemm::Kept`: activations and gradients, not the f32 master weights),
//! which is what training runs.

use super::Shape;
use crate::model::fused::gemm::{matmul, Into, Kept};
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
    /// Which of A and B a bf16 step holds as bf16 bits (`gemm::Kept`).
    pub kept: [bool; 2],
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
        // Linear layers keep their input and their output's gradient; attention keeps Q, K, V
        // and the context's gradient, not the probabilities.
        kept: match name {
            "attn Q·Kᵀ (per head)" => [true, true],
            n if n.contains("(per head)") => [false, true],
            n if n.ends_with("gᵀ·x") => [true, true],
            _ => [true, false],
        },
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
    /// bf16 with the operands a step keeps rounded (`Product::kept`) given as bf16 bits.
    pub kept_gflops: Option<f64>,
}

/// Times every product of `s`, repeating each for about `seconds` per precision.
pub fn run(s: &Shape, seconds: f64) -> Vec<Timed> {
    products(s)
        .into_iter()
        .map(|p| Timed {
            f32_gflops: time(&p, Precision::Fp32, false, seconds),
            bf16_gflops: gemm_bf16::native().then(|| time(&p, Precision::Bf16, false, seconds)),
            kept_gflops: gemm_bf16::native().then(|| time(&p, Precision::Bf16, true, seconds)),
            product: p,
        })
        .collect()
}

/// GFLOP/s of `p` repeated for about `seconds`; with `kept`, the operands `p.kept` names are
/// given rounded to bf16 bits.
fn time(p: &Product, precision: Precision, kept: bool, seconds: f64) -> f64 {
    let fill = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + salt) % 13) as f32 * 0.1 - 0.6)
            .collect()
    };
    let (a, b) = (fill(p.m * p.k, 1), fill(p.k * p.n, 2));
    let mut c = vec![0.0f32; p.m * p.n];
    let precision_of = |keep: bool| match keep && kept {
        true => Precision::Bf16,
        false => Precision::Fp32,
    };
    let (a, b) = (
        Kept::new(a, precision_of(p.kept[0])),
        Kept::new(b, precision_of(p.kept[1])),
    );
    let av = match p.a_t {
        false => a.view(0, (p.m, p.k), p.k),
        true => a.view(0, (p.k, p.m), p.m).t(),
    };
    let bv = match p.b_t {
        false => b.view(0, (p.k, p.n), p.n),
        true => b.view(0, (p.n, p.k), p.k).t(),
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
        "{:<24} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>10} {:>8}\n",
        "product", "m", "k", "n", "f32 GF/s", "bf16 GF/s", "bf16 kept", "kept/f32"
    );
    for t in timed {
        let p = &t.product;
        let (bf, kept, ratio) = match (t.bf16_gflops, t.kept_gflops) {
            (Some(b), Some(k)) => (
                format!("{b:.0}"),
                format!("{k:.0}"),
                format!("{:.2}", k / t.f32_gflops),
            ),
            _ => ("—".into(), "—".into(), "—".into()),
        };
        s += &format!(
            "{:<24} {:>6} {:>6} {:>6}  {:>10.0} {:>10} {:>10} {:>8}\n",
            p.name, p.m, p.k, p.n, t.f32_gflops, bf, kept, ratio
        );
    }
    s
}
