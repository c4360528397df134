//! How much memory a run of an experiment needs, estimated from its settings alone, so that a
//! size the machine cannot hold (a vocabulary of a billion tokens, a batch of a million
//! sequences) is refused with the key's name before anything is allocated, instead of the
//! process dying of an out-of-memory abort. The estimate is deliberately generous (float
//! arithmetic, no overflow): it errs towards refusing only what cannot possibly fit.

use super::{Experiment, ModelConfig};

/// The parts of a run's memory, in bytes, each with the key that drives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Weights, gradients, AdamW's two moments and the optimiser's host copies.
    pub parameters: f64,
    /// Activations kept for the backward pass of one micro-batch (`training.batch_size`).
    pub activations: f64,
    /// What grows with `tokenizer.vocab_size`: the embedding and output-layer share of
    /// `parameters` and the MLM logits' share of `activations`.
    pub vocabulary: f64,
    /// The MLM logits and their gradient (part of `activations` and of `vocabulary`).
    pub logits: f64,
    pub total: f64,
}

const F32: f64 = 4.0;
/// Copies of each parameter alive during a step: value, gradient, two AdamW moments, and the
/// flat value and gradient vectors the optimiser works on.
const COPIES: f64 = 6.0;

/// Vocabulary, hidden, feed-forward and layer counts as floats (the estimates never overflow).
fn sizes(e: &Experiment) -> (f64, f64, f64, f64) {
    let m = &e.model;
    (
        e.tokenizer.vocab_size as f64,
        m.hidden as f64,
        m.ffn as f64,
        m.layers as f64,
    )
}

/// The number of trainable parameters, counted as HF counts `BertForPreTraining`: encoder,
/// pooler, MLM head (tied decoder or its own, and its bias) and the 2-way pair head — what
/// the memory estimate assumes. The exact count of a run, whatever its objectives, is
/// `objectives::registry::parameters`.
pub fn parameters(e: &Experiment) -> f64 {
    let (v, h) = (e.tokenizer.vocab_size as f64, e.model.hidden as f64);
    encoder_parameters(&e.model, v)
        + mlm_head_parameters(h, v, e.model.tie_word_embeddings)
        + pair_head_parameters(h)
}

/// The encoder's trainable parameters: embeddings (word, position unless ALiBi, token types,
/// LayerNorm), the blocks, pre-LN's final LayerNorm and the pooler.
pub fn encoder_parameters(m: &ModelConfig, vocab: f64) -> f64 {
    let (h, f, l) = (m.hidden as f64, m.ffn as f64, m.layers as f64);
    let positions = match m.positions {
        super::Positions::Learned => m.max_positions as f64,
        super::Positions::Alibi => 0.0,
    };
    let embeddings = (vocab + positions + m.type_vocab as f64) * h + 2.0 * h;
    let biases = if m.linear_bias { 4.0 * h + f + h } else { 0.0 };
    let layer = 4.0 * h * h + 2.0 * h * f + biases + 4.0 * h;
    let final_norm = if m.norm == super::NormKind::PreLn {
        2.0 * h
    } else {
        0.0
    };
    embeddings + l * layer + final_norm + linear_parameters(h, h)
}

/// A dense layer from `inp` to `out` features, with its bias.
pub fn linear_parameters(inp: f64, out: f64) -> f64 {
    inp * out + out
}

/// An MLM head over `hidden`-wide states: dense transform, LayerNorm, the decoder's bias, and
/// the decoder itself when it is not the word embeddings.
pub fn mlm_head_parameters(hidden: f64, vocab: f64, tied: bool) -> f64 {
    let decoder = if tied { 0.0 } else { vocab * hidden };
    linear_parameters(hidden, hidden) + 2.0 * hidden + vocab + decoder
}

/// A 2-way classifier on `hidden`-wide states (NSP's and SOP's head).
pub fn pair_head_parameters(hidden: f64) -> f64 {
    linear_parameters(hidden, 2.0)
}

/// The estimate for one run of `e`.
pub fn estimate(e: &Experiment) -> Estimate {
    let m = &e.model;
    let t = &e.training;
    let (v, h, _, _) = sizes(e);
    let (b, s) = (t.batch_size as f64, t.seq_len as f64);
    let parameters = parameters(e) * F32 * COPIES;
    // The MLM decoder's logits for up to every position of the batch, with their gradient.
    let logits = 2.0 * F32 * (2.0 * b * s * 0.2 * v);
    let activations = encoder_activations(m, b, s) + logits;
    let vocabulary = (v * h + v) * F32 * COPIES + logits;
    Estimate {
        parameters,
        activations,
        vocabulary,
        logits,
        total: parameters + activations,
    }
}

/// What the encoder keeps for the backward pass of one batch of `sequences` × `seq` tokens,
/// in bytes. Per layer and token: the projections, FFN, norms, residuals and dropout masks
/// (about 12 hidden-wide and 3 FFN-wide vectors), plus scores, probabilities and dropout mask
/// of every head; doubled for the gradients of the backward pass.
pub fn encoder_activations(m: &ModelConfig, sequences: f64, seq: f64) -> f64 {
    let (h, f, l, heads) = (
        m.hidden as f64,
        m.ffn as f64,
        m.layers as f64,
        m.heads as f64,
    );
    let tokens = sequences * seq;
    let per_layer = tokens * (12.0 * h + 3.0 * f) + 3.0 * sequences * heads * seq * seq;
    2.0 * F32 * (l * per_layer + tokens * 4.0 * h)
}

/// A fine-tuning batch of `sequences` × `seq` tokens on the encoder `m`: `None` when it fits
/// in `available` bytes with the encoder's weights, gradients and AdamW state, otherwise why
/// not (the caller names its key: `batch_size`, or `max_seq_len`).
pub fn refuse_finetune(
    m: &ModelConfig,
    vocab: usize,
    sequences: usize,
    seq: usize,
    available: f64,
) -> Option<String> {
    let parameters = encoder_parameters(m, vocab as f64) * F32 * COPIES;
    let activations = encoder_activations(m, sequences as f64, seq as f64);
    (parameters + activations > available).then(|| {
        format!(
            "one batch of {sequences} sequences of up to {seq} tokens needs about {} \
             (encoder and optimiser state {}, activations {}), more than this machine's {}",
            gib(parameters + activations),
            gib(parameters),
            gib(activations),
            gib(available)
        )
    })
}

/// `None` when the estimate fits in `available` bytes; otherwise the key to change and why.
pub fn refuse(e: &Experiment, available: f64) -> Option<(&'static str, String)> {
    let est = estimate(e);
    if est.total <= available {
        return None;
    }
    // The one key whose default value would make the run fit, if there is one: the key the
    // user set past what the machine holds.
    if let Some(key) = culprit(e, available) {
        return Some((key, describe(&est, available)));
    }
    // Otherwise the key behind the largest of: what the vocabulary drives, the other
    // activations (batch), the other parameters (model width and depth).
    let batch = (est.activations - est.logits).max(0.0);
    let model = (est.parameters - (est.vocabulary - est.logits)).max(0.0);
    // The learned position table, when it outweighs the rest of the model's parameters.
    let positions = match e.model.positions {
        super::Positions::Learned => e.model.max_positions as f64 * e.model.hidden as f64,
        super::Positions::Alibi => 0.0,
    } * F32
        * COPIES;
    let key = if est.vocabulary >= batch && est.vocabulary >= model {
        "tokenizer.vocab_size"
    } else if batch >= model {
        "training.batch_size"
    } else if positions >= model - positions {
        "model.max_positions"
    } else {
        "model.hidden"
    };
    Some((key, describe(&est, available)))
}

/// The defaults a size key is put back to when looking for the one to blame.
struct Defaults {
    tokenizer: super::TokenizerConfig,
    model: ModelConfig,
    training: super::TrainingConfig,
}

/// The size keys a run's memory grows with, each with how to put back its default value.
type Reset = fn(&mut Experiment, &Defaults);
const SIZE_KEYS: [(&str, Reset); 7] = [
    ("tokenizer.vocab_size", |e, d| {
        e.tokenizer.vocab_size = d.tokenizer.vocab_size
    }),
    ("training.batch_size", |e, d| {
        e.training.batch_size = d.training.batch_size
    }),
    ("training.seq_len", |e, d| {
        e.training.seq_len = d.training.seq_len
    }),
    ("model.max_positions", |e, d| {
        e.model.max_positions = d.model.max_positions
    }),
    ("model.layers", |e, d| e.model.layers = d.model.layers),
    ("model.hidden", |e, d| e.model.hidden = d.model.hidden),
    ("model.ffn", |e, d| e.model.ffn = d.model.ffn),
];

/// The first size key that alone, put back to its default, makes `e` fit in `available`.
fn culprit(e: &Experiment, available: f64) -> Option<&'static str> {
    let defaults = Defaults {
        tokenizer: Default::default(),
        model: Default::default(),
        training: Default::default(),
    };
    SIZE_KEYS.iter().find_map(|(key, reset)| {
        let mut tried = e.clone();
        reset(&mut tried, &defaults);
        (estimate(&tried).total <= available).then_some(*key)
    })
}

fn describe(est: &Estimate, available: f64) -> String {
    format!(
        "a run needs about {} (parameters and optimiser state {}, activations of one batch \
         {}), more than this machine's {}; lower it (or training.batch_size with \
         training.grad_accum for the same effective batch)",
        gib(est.total),
        gib(est.parameters),
        gib(est.activations),
        gib(available)
    )
}

/// Bytes as GiB with a sensible number of digits.
pub fn gib(bytes: f64) -> String {
    let g = bytes / (1u64 << 30) as f64;
    if g >= 100.0 {
        format!("{g:.0} GiB")
    } else if g >= 1.0 {
        format!("{g:.1} GiB")
    } else {
        format!("{:.0} MiB", bytes / (1u64 << 20) as f64)
    }
}
