//! Gradient buffers seen from the host. GELU and PowerNorm compute their backward on host
//! vectors; on the CPU a gradient buffer is already a `Vec<f32>`, on dfdx's CUDA device it is a
//! device slice that has to be copied. Keeping the two cases here lets those ops stay
//! device-agnostic (and the CPU path copy-free).

use super::Dev;
use dfdx::prelude::*;
use dfdx::tensor::Storage;

/// A gradient buffer on `Dev`.
pub type GradBuf = <Dev as Storage<f32>>::Vec;
/// The error a backward op on `Dev` returns.
pub type DevError = <Dev as HasErr>::Err;

/// Lets `f` add to a gradient buffer in place (a matrix product accumulating onto it), which
/// saves a temporary, its zero-fill and a pass over it.
#[cfg(not(feature = "cuda"))]
pub fn accumulate(buf: &mut GradBuf, f: impl FnOnce(&mut [f32])) -> Result<(), DevError> {
    f(buf);
    Ok(())
}

#[cfg(feature = "cuda")]
pub fn accumulate(buf: &mut GradBuf, f: impl FnOnce(&mut [f32])) -> Result<(), DevError> {
    let dev = buf.device();
    let mut host = dev.dtoh_sync_copy(buf)?;
    f(&mut host);
    dev.htod_sync_copy_into(&host, &mut **buf)?;
    Ok(())
}

/// `buf += host`, element by element, over rayon's threads for large buffers.
pub fn add_from_host(buf: &mut GradBuf, host: &[f32]) -> Result<(), DevError> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    accumulate(buf, |buf| {
        buf.par_chunks_mut(CHUNK)
            .zip(host.par_chunks(CHUNK))
            .for_each(|(b, h)| {
                for (b, h) in b.iter_mut().zip(h) {
                    *b += h;
                }
            })
    })
}

/// A copy of the buffer's values in host memory: for parameter gradients, which stay where
/// they are for the optimiser.
#[cfg(not(feature = "cuda"))]
pub fn to_host(buf: &GradBuf) -> Result<Vec<f32>, DevError> {
    Ok(buf.to_vec())
}

#[cfg(feature = "cuda")]
pub fn to_host(buf: &GradBuf) -> Result<Vec<f32>, DevError> {
    Ok(buf.device().dtoh_sync_copy(buf)?)
}

/// A parameter's gradient for the optimiser, moved out of its buffer on the CPU (the buffer
/// is left empty: take it only once the backward pass is over, and only once) and copied
/// from the device on CUDA.
#[cfg(not(feature = "cuda"))]
pub fn take_param_grad(buf: &mut GradBuf) -> Result<Vec<f32>, DevError> {
    Ok(std::mem::take(&mut **buf))
}

#[cfg(feature = "cuda")]
pub fn take_param_grad(buf: &mut GradBuf) -> Result<Vec<f32>, DevError> {
    to_host(buf)
}

/// A buffer on `dev` holding `host`'s values.
#[cfg(not(feature = "cuda"))]
pub fn from_host(dev: &Dev, host: &[f32]) -> Result<GradBuf, DevError> {
    let mut buf = dev.try_alloc_len(host.len())?;
    buf.copy_from_slice(host);
    Ok(buf)
}

#[cfg(feature = "cuda")]
pub fn from_host(dev: &Dev, host: &[f32]) -> Result<GradBuf, DevError> {
    let mut buf = dev.try_alloc_len(host.len())?;
    buf.device().htod_sync_copy_into(host, &mut *buf)?;
    Ok(buf)
}

/// The incoming gradient of an op's own output, taken out of its buffer without a copy (one
/// device-to-host copy on CUDA). Sound because only the op that made a tensor reads that
/// tensor's gradient, once, after every consumer has added to it (dfdx runs backward ops in
/// reverse order, each once), and dfdx drops the gradients of non-leaf tensors when backward
/// ends. Never for a parameter's gradient, which the optimiser reads: use `to_host` there.
#[cfg(not(feature = "cuda"))]
pub fn take_output_grad(buf: &mut GradBuf) -> Result<Vec<f32>, DevError> {
    Ok(std::mem::take(&mut **buf))
}

#[cfg(feature = "cuda")]
pub fn take_output_grad(buf: &mut GradBuf) -> Result<Vec<f32>, DevError> {
    to_host(buf)
}

/// A vector of `len` values written over rayon's threads, `chunk` at a time, by
/// `write(start, out)` (`start` being the index of `out`'s first element), with no fill
/// first. glibc's `calloc` zero-fills a reused heap block on the calling thread (and with
/// `alloc`'s settings every block is reused), so a `vec![0; len]` that is then overwritten is
/// a single-threaded pass over memory the size of an activation while the other cores wait.
///
/// # Safety
/// `write` must write every element of each `out` it is given.
pub unsafe fn written<T: Send>(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, out)| write(i * chunk, out));
    // SAFETY: the caller's `write` wrote every one of the `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// A tensor's values as a slice: on the CPU its own buffer, read where it lies (no copy), on
/// CUDA a host copy. Every op used to copy each input out of its tensor (`fresh_to_vec`), the
/// weights on every forward pass included: single-threaded `memcpy`s that were most of what
/// a step's thread did while the pool's other threads waited (`perf`, session 27).
///
/// `Shared` holds a clone of the tensor (its buffer's `Arc`, flattened to one axis), so the
/// values are a snapshot: they stay alive as long as the `Values`, and nothing writes them
/// meanwhile — dfdx writes a buffer in place only through a tensor whose `Arc` is unique
/// (`Arc::make_mut`, its in-place kernels), and this clone keeps every other tensor's from
/// being so while it never writes through its own.
pub enum Values {
    Owned(Vec<f32>),
    #[cfg(not(feature = "cuda"))]
    Shared(Tensor<(usize,), f32, Dev>),
}

impl Values {
    /// `t`'s values in row-major order. A permuted or broadcast view is copied into that
    /// order (dfdx's `reshape`); a tensor an op or the optimiser made is read in place.
    pub fn of<S: Shape, T>(t: &Tensor<S, f32, Dev, T>) -> Self {
        #[cfg(not(feature = "cuda"))]
        {
            let n = t.shape().num_elements();
            Self::Shared(t.retaped::<NoneTape>().reshape_like(&(n,)))
        }
        #[cfg(feature = "cuda")]
        Self::Owned(fresh_to_vec(t))
    }
}

impl From<Vec<f32>> for Values {
    fn from(v: Vec<f32>) -> Self {
        Self::Owned(v)
    }
}

impl std::ops::Deref for Values {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Self::Owned(v) => v,
            #[cfg(not(feature = "cuda"))]
            Self::Shared(t) => in_place(t),
        }
    }
}

/// The buffer of a contiguous one-axis CPU tensor as a slice. dfdx 0.13 lends no slice of a
/// tensor's buffer, only a reference to one element (`Index`); the slice is rebuilt from the
/// first element's address with the provenance the global allocator exposed for the whole
/// block (`alloc::Zeroing`), the sanctioned way to turn an address back into a pointer.
#[cfg(not(feature = "cuda"))]
fn in_place(t: &Tensor<(usize,), f32, Dev>) -> &[f32] {
    let n = t.shape().0;
    if n == 0 {
        return &[];
    }
    let first: *const f32 = &t[[0]];
    // `Index` checks the last element against the buffer's length: with the step between
    // the two being one element, the buffer holds all `n` values from `first` on.
    let last: *const f32 = &t[[n - 1]];
    assert_eq!(
        last.addr() - first.addr(),
        (n - 1) * std::mem::size_of::<f32>(),
        "a tensor read in place is not contiguous"
    );
    let p = std::ptr::with_exposed_provenance::<f32>(first.addr());
    // SAFETY: `p` is the address of the buffer's first of at least `n` initialised values
    // (checked above), in a heap block whose provenance the global allocator exposed; the
    // slice borrows `t`, whose `Arc` keeps the buffer alive and unwritten (see `Values`).
    unsafe { std::slice::from_raw_parts(p, n) }
}

/// A copy of `src` made over rayon's threads: where an op needs its input's values as a
/// buffer of its own to change in place, without a single-threaded `memcpy`.
pub fn copied(src: &[f32]) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    // SAFETY: each chunk of the output is written whole from the same range of `src`.
    unsafe {
        written(src.len(), CHUNK, |start, out| {
            for (o, v) in out.iter_mut().zip(&src[start..]) {
                o.write(*v);
            }
        })
    }
}

/// Rows `rows` of the row-major `(·, width)` values `src`, in that order (`gemm::rows_of`
/// repeats one row instead).
pub fn picked_rows(src: &[f32], rows: &[usize], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    out
}

/// `dst[rows[i]] += src[i]` for every row `i` of `(·, width)` values, in `i` order within each
/// row of `dst` (a row may be named more than once: an embedding's gradient); `dst`'s rows are
/// split between threads, each scanning all of `rows` for its own. What `picked_rows` read,
/// its gradient added back in place.
pub fn add_to_rows(dst: &mut [f32], src: &[f32], rows: &[usize], width: usize) {
    use rayon::prelude::*;
    if width == 0 {
        return;
    }
    let per_task = (dst.len() / width)
        .div_ceil(4 * rayon::current_num_threads())
        .max(1);
    dst.par_chunks_mut(per_task * width)
        .enumerate()
        .for_each(|(task, block)| {
            let lo = task * per_task;
            let hi = lo + block.len() / width;
            for (r, &i) in rows.iter().enumerate() {
                if (lo..hi).contains(&i) {
                    let d = &mut block[(i - lo) * width..][..width];
                    d.iter_mut()
                        .zip(&src[r * width..][..width])
                        .for_each(|(d, s)| *d += s);
                }
            }
        });
}

/// The values of a tensor that an op just produced, by a plain copy of its buffer (a
/// device-to-host copy on CUDA). dfdx's `as_vec` walks the tensor element by element through
/// its strides; a fresh op output is contiguous and row-major, so its buffer already is the
/// answer. Not for permuted or broadcast views.
#[cfg(feature = "cuda")]
fn fresh_to_vec<S: Shape, T>(t: &Tensor<S, f32, Dev, T>) -> Vec<f32> {
    let mut v = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut v);
    // Every test build checks the precondition: a strided view would differ here.
    debug_assert!(
        v.iter()
            .zip(t.as_vec())
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "fresh_to_vec on a permuted or broadcast view"
    );
    v
}

/// `y`, the values of an elementwise op on `x`, as a tensor on `x`'s tape whose backward pass
/// adds to `x`'s gradient through `backward(dx, g)`, `g` being the output's gradient: the tape
/// work every host-side elementwise op shares (`gelu_host`, `fused::dropout`).
pub fn elementwise<S: Shape, T: Tape<f32, Dev>>(
    x: Tensor<S, f32, Dev, T>,
    y: Vec<f32>,
    backward: impl FnOnce(&mut [f32], &[f32]) + 'static,
) -> Tensor<S, f32, Dev, T> {
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let out: Tensor<S, f32, Dev> = x.device().tensor_from_vec(y, shape);
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&out_ghost)?;
        let g = take_output_grad(grads.get_or_alloc_mut(&out_ghost)?)?;
        accumulate(grads.get_or_alloc_mut(&x_ghost)?, |dx| backward(dx, &g))
    });
    out.put_tape(tape)
}

/// `dst += src`, element by element: gradient sums over micro-batches where the gradients are.
#[cfg(not(feature = "cuda"))]
pub fn add_into(dst: &mut GradBuf, src: &GradBuf) -> Result<(), DevError> {
    add_from_host(dst, src)
}

/// `buf *= s`, element by element: gradient clipping where the gradients are.
#[cfg(not(feature = "cuda"))]
pub fn scale(buf: &mut GradBuf, s: f32) -> Result<(), DevError> {
    use rayon::prelude::*;
    buf.par_iter_mut()
        .with_min_len(1 << 14)
        .for_each(|x| *x *= s);
    Ok(())
}

#[cfg(feature = "cuda")]
pub fn add_into(dst: &mut GradBuf, src: &GradBuf) -> Result<(), DevError> {
    kernels::launch(dst, Some(src), 1.0, "pretext_add")
}

#[cfg(feature = "cuda")]
pub fn scale(buf: &mut GradBuf, s: f32) -> Result<(), DevError> {
    kernels::launch(buf, None, s, "pretext_scale")
}

/// Two elementwise kernels dfdx 0.13 has no raw-buffer form of, compiled once per device by
/// NVRTC (its source is a constant, so only a missing NVRTC library can make this fail).
#[cfg(feature = "cuda")]
mod kernels {
    use super::{DevError, GradBuf};
    use cudarc::driver::{
        sys::CUresult, DevicePtr, DevicePtrMut, DeviceSlice, DriverError, LaunchAsync, LaunchConfig,
    };

    const MODULE: &str = "pretext_host";
    const SOURCE: &str = r#"
extern "C" __global__ void pretext_add(float* dst, const float* src, float s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) dst[i] += src[i];
}
extern "C" __global__ void pretext_scale(float* dst, const float* src, float s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) dst[i] *= s;
}
"#;

    pub fn launch(
        dst: &mut GradBuf,
        src: Option<&GradBuf>,
        s: f32,
        name: &str,
    ) -> Result<(), DevError> {
        let dev = dst.device();
        if !dev.has_func(MODULE, name) {
            let ptx = cudarc::nvrtc::compile_ptx(SOURCE)
                .map_err(|_| DriverError(CUresult::CUDA_ERROR_INVALID_SOURCE))?;
            dev.load_ptx(ptx, MODULE, &["pretext_add", "pretext_scale"])?;
        }
        let f = dev
            .get_func(MODULE, name)
            .ok_or(DriverError(CUresult::CUDA_ERROR_NOT_FOUND))?;
        let n = dst.len();
        let cfg = LaunchConfig::for_num_elems(n.min(1 << 20) as u32);
        // An unused source argument points at `dst` itself (the scale kernel ignores it).
        let src_ptr = *src.unwrap_or(dst).device_ptr();
        unsafe { f.launch(cfg, (*dst.device_ptr_mut(), src_ptr, s, n)) }?;
        Ok(())
    }
}
