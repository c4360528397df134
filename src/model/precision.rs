//! Which arithmetic the matrix products use: the setting of the code running on this thread,
//! as PyTorch's `autocast` has it. The trainer wraps its forward passes in `autocast`; each
//! fused op reads `products()` once, on the calling thread, and keeps it for its backward
//! pass, so a product and its gradients always share one precision.
//!
//! The setting is per thread (not per process) so that tests and runs in one process never
//! see each other's; rayon's workers never read it (the ops pass it down explicitly).

pub use crate::config::Precision;
use std::cell::Cell;

thread_local! {
    static PRODUCTS: Cell<Precision> = const { Cell::new(Precision::Fp32) };
}

/// The precision of the products of code running on this thread (f32 outside `autocast`).
pub fn products() -> Precision {
    PRODUCTS.with(Cell::get)
}

/// Sets this thread's precision until the guard drops (the previous one comes back). Give it
/// a precision from `resolve`: a bf16 setting on a CPU without the instructions still runs f32.
pub fn autocast(p: Precision) -> Autocast {
    Autocast {
        previous: PRODUCTS.with(|c| c.replace(p)),
    }
}

pub struct Autocast {
    previous: Precision,
}

impl Drop for Autocast {
    fn drop(&mut self) {
        PRODUCTS.with(|c| c.set(self.previous));
    }
}

/// The precision a run asks for, as this build and CPU can run it, and the one line to print
/// when they cannot: bf16 needs AVX512-BF16 (and the CPU build), else the run falls back to
/// f32 rather than emulating bf16 slowly. `PRETEXT_CPU_BF16=0` in the environment makes a CPU
/// with the instructions behave as one without (how the fallback is tested).
pub fn resolve(requested: Precision) -> (Precision, Option<String>) {
    match requested {
        Precision::Fp32 => (Precision::Fp32, None),
        Precision::Bf16 if cfg!(feature = "cuda") => (
            Precision::Fp32,
            Some("training.precision = \"bf16\": the CUDA build runs its matrix products in f32; this run uses fp32".into()),
        ),
        Precision::Bf16 if !cpu_has_bf16() => (
            Precision::Fp32,
            Some("training.precision = \"bf16\": this CPU lacks AVX512-BF16 (vdpbf16ps); this run uses fp32".into()),
        ),
        Precision::Bf16 => (Precision::Bf16, None),
    }
}

/// Whether the products can run in bf16 here (see `resolve` for the environment switch).
pub fn cpu_has_bf16() -> bool {
    std::env::var("PRETEXT_CPU_BF16").map_or(true, |v| v != "0")
        && super::fused::gemm_bf16::native()
}
