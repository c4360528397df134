//! Parameter containers with stable dotted names (`encoder.layers.3.attn.q.weight`), used by
//! checkpoints, TensorBoard histograms and the HF weight mapping alike.

use super::host::{copied, Values};
use super::{Dev, Matrix, Vector};
use crate::rng::Rng;
use dfdx::prelude::*;
use rand_distr::{Distribution, Normal};

/// A parameter of either rank, borrowed.
pub enum Param<'a> {
    Vector(&'a Vector),
    Matrix(&'a Matrix),
}

pub enum ParamMut<'a> {
    Vector(&'a mut Vector),
    Matrix(&'a mut Matrix),
}

impl Param<'_> {
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Param::Vector(t) => vec![t.shape().0],
            Param::Matrix(t) => vec![t.shape().0, t.shape().1],
        }
    }
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            Param::Vector(t) => copied(&Values::of(*t)),
            Param::Matrix(t) => copied(&Values::of(*t)),
        }
    }
}

impl ParamMut<'_> {
    pub fn shape(&self) -> Vec<usize> {
        match self {
            ParamMut::Vector(t) => vec![t.shape().0],
            ParamMut::Matrix(t) => vec![t.shape().0, t.shape().1],
        }
    }
    pub fn copy_from(&mut self, data: &[f32]) {
        match self {
            ParamMut::Vector(t) => t.copy_from(data),
            ParamMut::Matrix(t) => t.copy_from(data),
        }
    }
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            ParamMut::Vector(t) => copied(&Values::of(*t)),
            ParamMut::Matrix(t) => copied(&Values::of(*t)),
        }
    }
    /// The values where the tensor holds them (a copy on CUDA), for reading only.
    pub fn values(&self) -> Values {
        match self {
            ParamMut::Vector(t) => Values::of(*t),
            ParamMut::Matrix(t) => Values::of(*t),
        }
    }
    /// Sets the values to `data`, which becomes the tensor's buffer on the CPU: no copy. The
    /// optimiser's step copied each parameter out and back in (`copy_from`), two
    /// single-threaded passes over every weight, 8 % of a large bf16 step; now one. The
    /// tensor is a new one to dfdx (another id), so only between steps, never while a tape
    /// holds it.
    pub fn replace(&mut self, data: Vec<f32>) {
        assert_eq!(
            data.len(),
            self.shape().iter().product::<usize>(),
            "values for a parameter"
        );
        match self {
            ParamMut::Vector(t) => **t = t.device().tensor_from_vec(data, *t.shape()),
            ParamMut::Matrix(t) => **t = t.device().tensor_from_vec(data, *t.shape()),
        }
    }
}

/// Implements `Params` for a struct from one list of `field => "name"` pairs, so each
/// parameter is named once (as candle's `VarBuilder::pp` does) and `visit`, `visit_mut` and
/// `visit_state` cannot drift apart. A field may be a path (`embeddings.word`), any `Params` (a
/// `Vector`, a `Matrix`, an `Option` or `Vec` of them, another module) and its name may be
/// empty (a wrapper that adds no level of naming). Fields are visited in the order listed,
/// which is the order of checkpoints and of the optimiser's state. A module that keeps running
/// state of its own (it implements `RunningState`) ends the list with `with running_state`.
///
/// An enum lists, per pattern, the bindings it holds and their names:
/// `named_params!(enum Head { Head::Span { start, end } => { start => "start", end => "end" },
/// Head::None => {} })`; each binding is visited by reference in `visit` and `visit_state`
/// and by mutable reference in `visit_mut`.
macro_rules! named_params {
    (enum $ty:ty { $($pat:pat => { $($bind:ident => $name:literal),* $(,)? }),* $(,)? }) => {
        impl $crate::model::params::Params for $ty {
            fn visit<'a>(
                &'a self,
                prefix: &str,
                f: &mut dyn FnMut(String, $crate::model::params::Param<'a>),
            ) {
                let _ = (&prefix, &f);
                match self {
                    $($pat => {$($crate::model::params::Params::visit(
                        $bind,
                        &$crate::model::params::join(prefix, $name),
                        f,
                    );)*})*
                }
            }
            fn visit_mut<'a>(
                &'a mut self,
                prefix: &str,
                f: &mut dyn FnMut(String, $crate::model::params::ParamMut<'a>),
            ) {
                let _ = (&prefix, &f);
                match self {
                    $($pat => {$($crate::model::params::Params::visit_mut(
                        $bind,
                        &$crate::model::params::join(prefix, $name),
                        f,
                    );)*})*
                }
            }
            fn visit_state<'a>(
                &'a self,
                prefix: &str,
                f: &mut dyn FnMut(String, &'a dyn $crate::model::params::RunningState),
            ) {
                let _ = (&prefix, &f);
                match self {
                    $($pat => {$($crate::model::params::Params::visit_state(
                        $bind,
                        &$crate::model::params::join(prefix, $name),
                        f,
                    );)*})*
                }
            }
        }
    };
    ($ty:ty { $($($field:tt).+ => $name:literal),* $(,)? } $(with $own:ident)?) => {
        impl $crate::model::params::Params for $ty {
            fn visit<'a>(
                &'a self,
                prefix: &str,
                f: &mut dyn FnMut(String, $crate::model::params::Param<'a>),
            ) {
                let _ = (&prefix, &f);
                $($crate::model::params::Params::visit(
                    &self.$($field).+,
                    &$crate::model::params::join(prefix, $name),
                    f,
                );)*
            }
            fn visit_mut<'a>(
                &'a mut self,
                prefix: &str,
                f: &mut dyn FnMut(String, $crate::model::params::ParamMut<'a>),
            ) {
                let _ = (&prefix, &f);
                $($crate::model::params::Params::visit_mut(
                    &mut self.$($field).+,
                    &$crate::model::params::join(prefix, $name),
                    f,
                );)*
            }
            fn visit_state<'a>(
                &'a self,
                prefix: &str,
                f: &mut dyn FnMut(String, &'a dyn $crate::model::params::RunningState),
            ) {
                let _ = (&prefix, &f);
                $(
                    let _ = stringify!($own);
                    f(prefix.to_string(), self);
                )?
                $($crate::model::params::Params::visit_state(
                    &self.$($field).+,
                    &$crate::model::params::join(prefix, $name),
                    f,
                );)*
            }
        }
    };
}
pub(crate) use named_params;

/// State a module keeps beside its parameters and updates while training, without the
/// optimiser: PowerNorm's running statistics. Modules are visited for it as for parameters
/// (`Params::visit_state`), so checkpoints, TensorBoard histograms and the resume state read
/// every such state without knowing which module keeps one. Interior mutability (the state is
/// shared with the backward pass of the current step), hence `&self` for setting.
pub trait RunningState {
    /// Its family: the first part of its checkpoint names (`<kind>.<module>.<vector>`) and of
    /// its histogram tags (`<kind>/<module>/<vector>`).
    fn kind(&self) -> &'static str;
    /// Its vectors by name, in a fixed order.
    fn vectors(&self) -> Vec<(&'static str, Vec<f32>)>;
    /// How many updates it has seen (kept exactly in the resume state, not as a tensor).
    fn counter(&self) -> u64;
    /// Replaces the vectors (in `vectors`' order, each of its length) and the counter.
    fn restore(&self, vectors: Vec<Vec<f32>>, counter: u64);
}

/// Anything that holds parameters lists them, with names relative to itself.
pub trait Params {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>));
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>));
    /// The running state of every module inside, named as the module's parameters are (none
    /// for plain tensors).
    fn visit_state<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a dyn RunningState)) {
        let _ = (prefix, f);
    }

    /// Every running state with the module's name, in visiting order.
    fn running_states(&self) -> Vec<(String, &dyn RunningState)> {
        let mut out = Vec::new();
        self.visit_state("", &mut |n, s| out.push((n, s)));
        out
    }

    /// Every parameter with its stable name, in visiting order.
    fn named_params(&self) -> Vec<(String, Param<'_>)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, p| out.push((n, p)));
        out
    }
}

impl Params for Vector {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        f(prefix.to_string(), Param::Vector(self));
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        f(prefix.to_string(), ParamMut::Vector(self));
    }
}

impl Params for Matrix {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        f(prefix.to_string(), Param::Matrix(self));
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        f(prefix.to_string(), ParamMut::Matrix(self));
    }
}

/// An optional part (a bias, an untied decoder, learned positions) is visited when present.
impl<P: Params> Params for Option<P> {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        if let Some(p) = self {
            p.visit(prefix, f);
        }
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        if let Some(p) = self {
            p.visit_mut(prefix, f);
        }
    }
    fn visit_state<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a dyn RunningState)) {
        if let Some(p) = self {
            p.visit_state(prefix, f);
        }
    }
}

/// A module borrowed for a while (a fine-tuned model borrows its encoder).
impl<P: Params> Params for &mut P {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        (**self).visit(prefix, f);
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        (**self).visit_mut(prefix, f);
    }
    fn visit_state<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a dyn RunningState)) {
        (**self).visit_state(prefix, f);
    }
}

/// A stack of layers, named by index: `encoder.layers.3.…`.
impl<P: Params> Params for Vec<P> {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, Param<'a>)) {
        for (i, p) in self.iter().enumerate() {
            p.visit(&join(prefix, &i.to_string()), f);
        }
    }
    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'a>)) {
        for (i, p) in self.iter_mut().enumerate() {
            p.visit_mut(&join(prefix, &i.to_string()), f);
        }
    }
    fn visit_state<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a dyn RunningState)) {
        for (i, p) in self.iter().enumerate() {
            p.visit_state(&join(prefix, &i.to_string()), f);
        }
    }
}

/// `prefix.name`; an empty `name` is the prefix itself (a wrapper that adds no level).
pub fn join(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub fn normal_matrix(dev: &Dev, rows: usize, cols: usize, std: f32, rng: &mut Rng) -> Matrix {
    let dist = Normal::new(0.0f32, std).expect("std validated > 0");
    let data: Vec<f32> = (0..rows * cols).map(|_| dist.sample(rng)).collect();
    dev.tensor_from_vec(data, (rows, cols))
}

pub fn filled_vector(dev: &Dev, n: usize, value: f32) -> Vector {
    dev.tensor_from_vec(vec![value; n], (n,))
}

/// `y = x Wᵀ + b`, weights stored `(out, in)` as in PyTorch so HF checkpoints load as they are.
/// Without `b` when the encoder's projections go bias-free (`model.linear_bias = false`).
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Matrix,
    pub bias: Option<Vector>,
}

impl Linear {
    pub fn new(dev: &Dev, inp: usize, out: usize, std: f32, rng: &mut Rng) -> Self {
        Self::with_bias(dev, inp, out, std, true, rng)
    }

    pub fn with_bias(
        dev: &Dev,
        inp: usize,
        out: usize,
        std: f32,
        bias: bool,
        rng: &mut Rng,
    ) -> Self {
        Self {
            weight: normal_matrix(dev, out, inp, std, rng),
            bias: bias.then(|| filled_vector(dev, out, 0.0)),
        }
    }
}

named_params!(Linear { weight => "weight", bias => "bias" });

/// LayerNorm's affine parameters (also PowerNorm's: both end in `γ ⊙ ẑ + β`).
#[derive(Clone, Debug)]
pub struct Affine {
    pub weight: Vector,
    pub bias: Vector,
}

impl Affine {
    pub fn new(dev: &Dev, n: usize) -> Self {
        Self {
            weight: filled_vector(dev, n, 1.0),
            bias: filled_vector(dev, n, 0.0),
        }
    }
}

named_params!(Affine { weight => "weight", bias => "bias" });

impl Param<'_> {
    /// This parameter's gradient in `grads`, copied to the host (zeros if the loss did not
    /// reach it).
    pub fn grad(&self, grads: &mut Gradients<f32, Dev>) -> Vec<f32> {
        self.grad_buf(grads)
            .ok()
            .and_then(|g| super::host::to_host(g).ok())
            .unwrap_or_default()
    }

    /// `grad`, moved out of `grads` where it can be (`host::take_param_grad`): for the
    /// training step, which drops `grads` after reading each parameter's gradient once. Zeros
    /// of the parameter's length where the buffer cannot be read, so the optimiser always
    /// gets a full gradient.
    pub fn take_grad(&self, grads: &mut Gradients<f32, Dev>) -> Vec<f32> {
        self.grad_buf(grads)
            .ok()
            .and_then(|g| super::host::take_param_grad(g).ok())
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| vec![0.0; self.shape().iter().product()])
    }

    /// This parameter's gradient buffer in `grads`, where it lives (zeros, allocated now, if
    /// the loss did not reach it).
    pub fn grad_buf<'g>(
        &self,
        grads: &'g mut Gradients<f32, Dev>,
    ) -> Result<&'g mut super::host::GradBuf, super::host::DevError> {
        match self {
            Param::Vector(t) => grads.get_or_alloc_mut(*t),
            Param::Matrix(t) => grads.get_or_alloc_mut(*t),
        }
    }

    /// The sum of the squares of this parameter's gradient in `grads`, computed on the device.
    pub fn grad_sum_squares(
        &self,
        grads: &mut Gradients<f32, Dev>,
    ) -> Result<f64, super::host::DevError> {
        self.grad_buf(grads)?;
        Ok(match self {
            Param::Vector(t) => grads.get(*t).square().sum::<Rank0, _>().array(),
            Param::Matrix(t) => grads.get(*t).square().sum::<Rank0, _>().array(),
        } as f64)
    }
}

impl ParamMut<'_> {
    /// As `Param::grad_buf`.
    pub fn grad_buf<'g>(
        &self,
        grads: &'g mut Gradients<f32, Dev>,
    ) -> Result<&'g mut super::host::GradBuf, super::host::DevError> {
        match self {
            ParamMut::Vector(t) => grads.get_or_alloc_mut(&**t),
            ParamMut::Matrix(t) => grads.get_or_alloc_mut(&**t),
        }
    }

    /// One step of dfdx's fused Adam kernel on this parameter, where it lives.
    pub fn adam(
        &mut self,
        cfg: &AdamConfig,
        t: i32,
        m: &mut super::host::GradBuf,
        v: &mut super::host::GradBuf,
        grad: &super::host::GradBuf,
    ) -> Result<(), super::host::DevError> {
        match self {
            ParamMut::Vector(p) => cfg.try_update(t, *p, m, v, grad),
            ParamMut::Matrix(p) => cfg.try_update(t, *p, m, v, grad),
        }
    }
}
