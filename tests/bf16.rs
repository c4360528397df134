//! Issue 16, item 3: bf16 mixed precision, the kernel. Against the plain definition of its
//! arithmetic (bf16-rounded operands, f32 sums) on every layout the model's products use and
//! on awkward sizes; and its results against exact products within bf16's tolerance (and not
//! equal to f32's, so that a silent f32 fallback fails). Whole bf16 runs: `tests/bf16_runs.rs`.
//!
//! On a CPU without AVX512-BF16 the kernel tests say so and check only the fallback.

mod common;

use pretext::config::Precision;
use pretext::model::fused::gemm::{matmul, Into, Operand, View};
use pretext::model::fused::gemm_bf16::{self, reference, rounded};

/// Pseudo-random values in [-1, 1), some tiny and some large, none of them bf16-exact.
fn values(len: usize, salt: u64) -> Vec<f32> {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            match i % 17 {
                0 => v * 1e-3,
                1 => v * 30.0,
                _ => v,
            }
        })
        .collect()
}

/// A `(rows, cols)` view of `data`: row-major, transposed (column-major), or with neither
/// stride 1 (every other element of a wider buffer).
fn view(data: &[f32], (rows, cols): (usize, usize), layout: u8) -> View<'_> {
    match layout {
        0 => View::new(data, 0, (rows, cols), cols),
        1 => View::new(data, 0, (cols, rows), rows).t(),
        _ => View {
            data,
            offset: 1,
            rows,
            cols,
            rs: 2 * cols,
            cs: 2,
        },
    }
}

fn native_or_say() -> bool {
    let native = gemm_bf16::native();
    if !native {
        eprintln!("this CPU lacks AVX512-BF16: the kernel is not tested here, only the fallback");
    }
    native
}

/// Runs `f` on each bf16 kernel this CPU has: AMX tiles where it has them, and `vdpbf16ps`
/// (the kernel's name goes to stderr first, which a failing test shows).
fn each_kernel(f: impl Fn()) {
    if gemm_bf16::kernel_name() == "amx" {
        eprintln!("kernel: amx");
        f();
    }
    gemm_bf16::without_amx(|| {
        eprintln!("kernel: {}", gemm_bf16::kernel_name());
        f()
    });
}

/// Runs `f` on each size with every pair of layouts (`view`'s 0, 1, 2) and fresh operand
/// data, numbering the cases so that each draws its own values.
fn each_case(
    sizes: &[(usize, usize, usize)],
    mut f: impl FnMut((usize, usize, usize), (u8, u8), u64, &[f32], &[f32]),
) {
    let mut case = 0;
    for &(m, k, n) in sizes {
        for la in 0..3 {
            for lb in 0..3 {
                case += 1;
                let a_data = values(2 * m * k + 1, case);
                let b_data = values(2 * k * n + 1, case + 1000);
                f((m, k, n), (la, lb), case, &a_data, &b_data);
            }
        }
    }
}

/// Sizes around the kernels' tiles (12 × 32 and AMX's 32 × 32 of 16 pairs), k pair and block
/// (512) and column block (2048) edges, with every layout of A and B, overwriting and
/// accumulating, on one and all threads, on each kernel.
#[test]
fn the_kernel_computes_bf16_products_with_f32_sums() {
    if !native_or_say() {
        return;
    }
    let sizes = [
        (1, 1, 1),
        (12, 2, 32),
        (13, 3, 33),
        (5, 7, 17),
        (25, 511, 40),
        (37, 1030, 65),
        (128, 64, 128),
        (3, 5, 2100),
        (200, 96, 48),
    ];
    each_kernel(|| {
        each_case(&sizes, |(m, k, n), (la, lb), case, a_data, b_data| {
            let (a, b) = (view(a_data, (m, k), la), view(b_data, (k, n), lb));
            let rs = n + 3; // a destination wider than the product, as attention's is
            let start = values(m * rs + 2, case + 2000);
            for (into, parallel) in [(Into::Overwrite, true), (Into::Accumulate, false)] {
                let mut want = start.clone();
                reference(&mut want, 2, rs, a, b, 0.5, into);
                let mut got = start.clone();
                matmul(&mut got, 2, rs, a, b, 0.5, into, parallel, Precision::Bf16);
                for i in 0..m {
                    for j in 0..n {
                        let at = 2 + i * rs + j;
                        // Only the order of the f32 sums differs from the definition.
                        let scale: f32 = (0..k)
                            .map(|kk| {
                                (rounded(a.data[a.offset + i * a.rs + kk * a.cs])
                                    * rounded(b.data[b.offset + kk * b.rs + j * b.cs]))
                                .abs()
                            })
                            .sum::<f32>()
                            + start[at].abs();
                        assert!(
                            (got[at] - want[at]).abs() <= 1e-6 * k as f32 * scale + 1e-30,
                            "m {m} k {k} n {n} layouts {la}/{lb}: ({i}, {j}) {} vs {}",
                            got[at],
                            want[at]
                        );
                    }
                }
                // Outside the product nothing is written.
                for (at, (g, s)) in got.iter().zip(&start).enumerate() {
                    let j = (at as isize - 2).rem_euclid(rs as isize) as usize;
                    if at < 2 || j >= n || at >= 2 + m * rs {
                        assert_eq!(g, s, "element {at} outside the product changed");
                    }
                }
            }
        })
    });
}

/// Operands rounded once beforehand (`gemm::Kept`, what the linear layers and attention keep
/// for their backward products) give the product of the f32 operands bit for bit, in every
/// layout and mixed with f32 operands: the packing copies the words it would have rounded.
#[test]
fn products_of_operands_rounded_beforehand_are_bit_identical() {
    if !native_or_say() {
        return;
    }
    // (128, 64), (30, 256) and (25, 2048): rows `vdpbf16ps`'s kernel reads in place (full
    // strips); (64, 1024): rows AMX's reads in place (32-row strips on cache lines: the
    // allocator lines up blocks of 64 KiB and more).
    let sizes = [
        (64, 1024, 40),
        (13, 3, 33),
        (25, 511, 40),
        (37, 1030, 65),
        (128, 64, 128),
        (30, 256, 40),
        (25, 2048, 20),
        (3, 5, 70),
    ];
    each_kernel(|| {
        each_case(&sizes, |(m, k, n), (la, lb), case, a_data, b_data| {
            let (a_bits, b_bits) = (gemm_bf16::round_all(a_data), gemm_bf16::round_all(b_data));
            let (a, b) = (view(a_data, (m, k), la), view(b_data, (k, n), lb));
            let bits = |v: View, data| View::<u16> {
                data,
                offset: v.offset,
                rows: v.rows,
                cols: v.cols,
                rs: v.rs,
                cs: v.cs,
            };
            let (ar, br) = (bits(a, &a_bits), bits(b, &b_bits));
            let start = values(m * n, case + 2000);
            let product = |a: Operand, b: Operand| {
                let mut c = start.clone();
                matmul(
                    &mut c,
                    0,
                    n,
                    a,
                    b,
                    0.5,
                    Into::Accumulate,
                    true,
                    Precision::Bf16,
                );
                c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            let want = product(a.into(), b.into());
            for (name, x, y) in [
                ("both", ar.into(), br.into()),
                ("A", ar.into(), b.into()),
                ("B", a.into(), br.into()),
            ] {
                assert!(
                    product(x, y) == want,
                    "m {m} k {k} n {n} layouts {la}/{lb}: {name} rounded beforehand differs"
                );
            }
        })
    });
}

/// A layer's forward product with its bias added as the kernel stores each tile
/// (`gemm::onto_bias`) equals the product accumulated onto the bias rows, bit for bit, on
/// every layout, across k blocks (the bias only at the first) and ragged tiles; and GELU
/// made on each finished tile (`Kept::made_from_product`) equals GELU over the finished
/// product, values and slope, then rounded.
#[test]
fn the_bias_and_the_tile_epilogue_are_the_unfused_arithmetic_bit_for_bit() {
    use pretext::model::fused::gemm::{onto_bias, Kept};
    use pretext::model::fused::vmath;
    if !native_or_say() {
        return;
    }
    let sizes = [(13, 3, 33), (25, 511, 40), (37, 1030, 65), (30, 256, 40)];
    each_kernel(|| {
        each_case(&sizes, |(m, k, n), (la, lb), case, a_data, b_data| {
            let (a, b) = (view(a_data, (m, k), la), view(b_data, (k, n), lb));
            let bias = values(n, case + 3000);
            for bias in [Some(&bias[..]), None] {
                let mut want: Vec<f32> = match bias {
                    Some(b) => (0..m).flat_map(|_| b.iter().copied()).collect(),
                    None => vec![0.0; m * n],
                };
                matmul(
                    &mut want,
                    0,
                    n,
                    a,
                    b,
                    1.0,
                    Into::Accumulate,
                    true,
                    Precision::Bf16,
                );
                let got = onto_bias(a.into(), b.into(), bias, Precision::Bf16);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let what = format!(
                    "m {m} k {k} n {n} layouts {la}/{lb} bias {}",
                    bias.is_some()
                );
                assert!(bits(&got) == bits(&want), "{what}: onto_bias differs");

                let mut slope = want.clone();
                let mut act = vec![0.0; m * n];
                vmath::gelu_forward_slope(&mut slope, &mut act);
                let gelu = |_: usize, a: &mut [f32], u: &mut [f32]| vmath::gelu_forward_slope(u, a);
                let (u, kept) =
                    Kept::made_from_product(a.into(), b.into(), bias, Precision::Bf16, gelu);
                assert!(bits(&u) == bits(&slope), "{what}: the slope differs");
                let Kept::Bf16(made) = kept else {
                    panic!("{what}: not kept in bf16")
                };
                assert!(
                    made == gemm_bf16::round_all(&act),
                    "{what}: the activation differs"
                );
            }
        })
    });
}

/// Against the exact product (f64 on the unrounded operands): within what rounding two
/// operands to 8 significant bits allows, and measurably away from the f32 product — a bf16
/// setting that ran f32 would fail here.
#[test]
fn bf16_products_are_within_bf16_tolerance_of_exact_ones() {
    if !native_or_say() {
        return;
    }
    let (m, k, n) = (96, 384, 160);
    let (a_data, b_data) = (values(m * k, 7), values(k * n, 8));
    let (a, b) = (view(&a_data, (m, k), 0), view(&b_data, (k, n), 1));
    let run = |p| {
        let mut c = vec![0.0f32; m * n];
        matmul(&mut c, 0, n, a, b, 1.0, Into::Overwrite, true, p);
        c
    };
    each_kernel(|| {
        check_tolerance(
            (m, k, n),
            &a_data,
            &b_data,
            run(Precision::Bf16),
            run(Precision::Fp32),
        )
    });
}

fn check_tolerance(
    (m, k, n): (usize, usize, usize),
    a_data: &[f32],
    b_data: &[f32],
    bf: Vec<f32>,
    f: Vec<f32>,
) {
    let mut worst_f32_gap = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut scale) = (0.0f64, 0.0f64);
            for kk in 0..k {
                let p = a_data[i * k + kk] as f64 * b_data[j * k + kk] as f64;
                exact += p;
                scale += p.abs();
            }
            let got = bf[i * n + j] as f64;
            // Each operand is within 2^-9 relatively; their product within about 2^-8.
            assert!(
                (got - exact).abs() <= scale * (2f64.powi(-8) + 1e-6),
                "({i}, {j}): {got} vs exact {exact} (scale {scale})"
            );
            worst_f32_gap = worst_f32_gap.max((got - f[i * n + j] as f64).abs() / scale);
        }
    }
    assert!(
        worst_f32_gap > 1e-4,
        "the bf16 products equal f32's ({worst_f32_gap:e}): bf16 did not run"
    );
}
