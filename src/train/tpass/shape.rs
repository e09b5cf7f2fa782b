//! The Transformer's sizes and parameter offsets as the passes read them, and the dropout
//! masks of a step.

use crate::kernels::Real;
use crate::model::transformer::{ParamSpec, TActivation, TransformerConfig};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// Where one block's parameters sit in the flat vector.
#[derive(Clone, Debug)]
pub struct BlockAt {
    pub wq: usize,
    pub wk: usize,
    pub wv: usize,
    pub wo: usize,
    pub fc1: usize,
    pub fc1_b: Option<usize>,
    pub fc2: usize,
    pub fc2_b: Option<usize>,
    /// Offsets of `ln1.weight` and `ln2.weight` (each bias follows its weight).
    pub ln1: Option<usize>,
    pub ln2: Option<usize>,
}

/// The Transformer's sizes, options and parameter offsets, as the passes need them.
#[derive(Clone, Debug)]
pub struct Shape {
    pub p: usize,
    pub d: usize,
    pub nh: usize,
    pub hd: usize,
    pub h: usize,
    pub act: TActivation,
    pub tok: usize,
    pub pos: usize,
    pub blocks: Vec<BlockAt>,
    pub ln_f: Option<usize>,
    /// The output matrix `[p, d]` (the token embedding when tied).
    pub out: usize,
    pub n_params: usize,
    pub attn_scale: f64,
    pub logit_scale: f64,
}

impl Shape {
    pub fn new(cfg: &TransformerConfig, p: usize, specs: &[ParamSpec]) -> Shape {
        let at = |name: &str| specs.iter().find(|s| s.name == name).map(|s| s.offset);
        let need = |name: &str| at(name).unwrap_or_else(|| panic!("layout lacks {name}"));
        let blocks = (0..cfg.layers)
            .map(|l| {
                let n = |x: &str| format!("layers.{l}.{x}");
                BlockAt {
                    wq: need(&n("attn.wq")),
                    wk: need(&n("attn.wk")),
                    wv: need(&n("attn.wv")),
                    wo: need(&n("attn.wo")),
                    fc1: need(&n("mlp.fc1")),
                    fc1_b: at(&n("mlp.fc1_bias")),
                    fc2: need(&n("mlp.fc2")),
                    fc2_b: at(&n("mlp.fc2_bias")),
                    ln1: at(&n("ln1.weight")),
                    ln2: at(&n("ln2.weight")),
                }
            })
            .collect();
        let tok = need("tok_emb");
        Shape {
            p,
            d: cfg.d_model,
            nh: cfg.heads,
            hd: cfg.head_dim(),
            h: cfg.hidden(),
            act: cfg.activation,
            tok,
            pos: need("pos_emb"),
            blocks,
            ln_f: at("ln_f.weight"),
            out: at("unembed").unwrap_or(tok),
            n_params: specs.last().map(|s| s.offset + s.len()).unwrap_or(0),
            attn_scale: cfg.attn_scale(),
            logit_scale: cfg.logit_scale(),
        }
    }

    pub fn layers(&self) -> usize {
        self.blocks.len()
    }
}

/// Dropout masks for a range of a batch's examples (entries 0 or 1/(1−q)).
pub struct Masks<T> {
    /// On the sum of token and position embeddings, `[n, 2, d]`.
    pub emb: Vec<T>,
    pub layers: Vec<LayerMasks<T>>,
}

/// One block's dropout masks.
pub struct LayerMasks<T> {
    /// On the attention probabilities, `[n, heads, 2, 2]`.
    pub att: Vec<T>,
    /// On the attention output after `Wo`, `[n, 2, d]`.
    pub ao: Vec<T>,
    /// On the MLP output, `[n, 2, d]`.
    pub mlp: Vec<T>,
}

/// The dropout masks of examples `rows` of a batch of `batch` examples at optimizer step
/// `step`: ChaCha8 seeded with `seed`, stream `step`; the stream holds, in order, the
/// embedding mask of the whole batch, then per block its attention, attention-output and
/// MLP-output masks, one 32-bit word per entry (kept when the word ≥ q·(2³²−1)). A range
/// reads its words by position, so chunks of a batch draw exactly the batch's masks.
pub fn masks<T: Real>(
    sh: &Shape,
    q: f32,
    seed: u64,
    step: u64,
    batch: usize,
    rows: Range<usize>,
) -> Option<Masks<T>> {
    if q <= 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    let threshold = (q as f64 * u32::MAX as f64) as u32;
    let scale = T::from_f32(1.0 / (1.0 - q));
    let (d, nh, n) = (sh.d, sh.nh, rows.len());
    let mut draw = |start: u128, len: usize| -> Vec<T> {
        rng.set_word_pos(start);
        (0..len)
            .map(|_| {
                if rng.next_u32() >= threshold {
                    scale
                } else {
                    T::ZERO
                }
            })
            .collect()
    };
    let (b, e0) = (batch as u128, rows.start as u128);
    let (d2, a4) = (2 * d as u128, 4 * nh as u128);
    let emb = draw(e0 * d2, n * 2 * d);
    let per_layer = b * (a4 + 2 * d2);
    let layers = (0..sh.layers() as u128)
        .map(|l| {
            let base = b * d2 + l * per_layer;
            LayerMasks {
                att: draw(base + e0 * a4, n * 4 * nh),
                ao: draw(base + b * a4 + e0 * d2, n * 2 * d),
                mlp: draw(base + b * a4 + b * d2 + e0 * d2, n * 2 * d),
            }
        })
        .collect();
    Some(Masks { emb, layers })
}
