//! Network and optimizer specifications.

use crate::NnError;

/// What a head's outputs mean, which tells a sequence model how to read them out.
///
/// An MLP ignores the role (every head is a linear layer on the torso). A
/// [`TransformerSpec`] network reads [`HeadRole::Pooled`] heads at token 0 and action heads
/// with the spec's [`TokenReadout`] for that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeadRole {
    /// A state-level output (e.g. `log F(s)`, a dueling value).
    #[default]
    Pooled,
    /// One output per forward action (logits, Q-values).
    ForwardActions,
    /// One output per backward action (learned `P_B` logits).
    BackwardActions,
}

/// One output head on top of the shared torso.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// Unique head name; parameters are called `head.<name>.weight` / `head.<name>.bias` (and
    /// `head.<name>.position.*` / `head.<name>.word.*` for a transformer's token-word readout)
    /// and the optimizer group `head:<name>`.
    pub name: String,
    /// Number of outputs per row.
    pub dim: usize,
    /// What the outputs mean.
    pub role: HeadRole,
}

impl HeadSpec {
    /// A [`HeadRole::Pooled`] head.
    pub fn new(name: impl Into<String>, dim: usize) -> Self {
        Self {
            name: name.into(),
            dim,
            role: HeadRole::Pooled,
        }
    }

    /// A head with one output per forward action.
    pub fn forward_actions(name: impl Into<String>, dim: usize) -> Self {
        Self {
            role: HeadRole::ForwardActions,
            ..Self::new(name, dim)
        }
    }

    /// A head with one output per backward action.
    pub fn backward_actions(name: impl Into<String>, dim: usize) -> Self {
        Self {
            role: HeadRole::BackwardActions,
            ..Self::new(name, dim)
        }
    }
}

/// A learned scalar that lives next to the network (e.g. `log_z` of trajectory balance).
///
/// The network never reads it; the host-side loss does, and hands its gradient back to
/// [`Model::backward`](crate::Model::backward).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarSpec {
    /// Unique scalar name; the parameter is `scalar.<name>` and the group `scalar:<name>`.
    pub name: String,
    /// Initial value.
    pub init: f32,
}

impl ScalarSpec {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, init: f32) -> Self {
        Self {
            name: name.into(),
            init,
        }
    }
}

/// A multi-layer perceptron with several heads on one torso.
///
/// `input -> [Linear -> ReLU] for each hidden dim -> one Linear per head`. With `hidden_dims`
/// empty, the heads read the input directly.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    /// Features per input row.
    pub input_dim: usize,
    /// Widths of the hidden layers, input side first.
    pub hidden_dims: Vec<usize>,
    /// Output heads, in output order (at least one).
    pub heads: Vec<HeadSpec>,
    /// Learned scalars, in order.
    pub scalars: Vec<ScalarSpec>,
}

impl MlpSpec {
    /// Width of the layer the heads read (the last hidden dim, or the input dim).
    pub fn torso_output_dim(&self) -> usize {
        self.hidden_dims.last().copied().unwrap_or(self.input_dim)
    }

    /// Head output dims in spec order.
    pub fn head_dims(&self) -> Vec<usize> {
        self.heads.iter().map(|h| h.dim).collect()
    }

    /// Checks sizes and names.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] on a zero size, no heads, or an empty/duplicate head or scalar
    /// name.
    pub fn validate(&self) -> Result<(), NnError> {
        let bad = |m: String| Err(NnError::InvalidSpec(m));
        if self.input_dim == 0 {
            return bad("input_dim must be at least 1, found 0".into());
        }
        if let Some(i) = self.hidden_dims.iter().position(|&d| d == 0) {
            return bad(format!("hidden_dims[{i}] must be at least 1, found 0"));
        }
        validate_heads(&self.heads, &self.scalars)
    }
}

/// Checks head and scalar names and sizes (shared by every architecture).
fn validate_heads(heads: &[HeadSpec], scalars: &[ScalarSpec]) -> Result<(), NnError> {
    let bad = |m: String| Err(NnError::InvalidSpec(m));
    if heads.is_empty() {
        return bad("expected at least one head, found none".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in heads {
        if h.name.is_empty() {
            return bad("head names must not be empty".into());
        }
        if h.dim == 0 {
            return bad(format!(
                "head `{}` must have dim at least 1, found 0",
                h.name
            ));
        }
        if !seen.insert(h.name.as_str()) {
            return bad(format!("head name `{}` is used twice", h.name));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in scalars {
        if s.name.is_empty() {
            return bad("scalar names must not be empty".into());
        }
        if !s.init.is_finite() {
            return bad(format!(
                "scalar `{}` has non-finite init {}",
                s.name, s.init
            ));
        }
        if !seen.insert(s.name.as_str()) {
            return bad(format!("scalar name `{}` is used twice", s.name));
        }
    }
    Ok(())
}

/// How a transformer reads one side's action outputs from its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenReadout {
    /// Output `token * words + word` = `position_logit[token] + word_logit[token, word]`, with
    /// the position logits a linear map of token 0's output and the word logits a linear map of
    /// each token's output (`tokens * words` outputs).
    TokenWord {
        /// Values per token.
        words: usize,
    },
    /// Output `token` = a linear map of that token's output (`tokens` outputs).
    Token,
}

impl TokenReadout {
    /// Number of outputs for `tokens` tokens.
    pub fn dim(&self, tokens: usize) -> usize {
        match self {
            TokenReadout::TokenWord { words } => tokens * words,
            TokenReadout::Token => tokens,
        }
    }
}

/// A bidirectional transformer encoder with token readouts (the bit-sequence policy of the paper).
///
/// The input row is `tokens` blocks of `token_features` values; each block is multiplied by a
/// learned embedding matrix (`embed.weight`, `[token_features, d_model]`, initialized N(0, 1)
/// like PyTorch's `Embedding`, so a one-hot block selects a learned token embedding; not scaled
/// by `sqrt(d_model)`), sinusoidal positions are added, then dropout and `layers` post-LN
/// encoder layers (PyTorch's `TransformerEncoderLayer` defaults: ReLU, LayerNorm eps 1e-5,
/// dropout on the attention weights, after attention, inside and after the feed-forward).
/// No attention mask: every token sees every token.
///
/// Heads read the final token outputs by role: [`HeadRole::Pooled`] heads are linear maps of
/// token 0 (the BOS position); [`HeadRole::ForwardActions`] and
/// [`HeadRole::BackwardActions`] heads use `forward_readout` / `backward_readout`.
/// Dropout is only active in [`Model::forward_train`](crate::Model::forward_train), drawn from
/// the caller's RNG; [`Model::forward`](crate::Model::forward) is the evaluation mode.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerSpec {
    /// Tokens per input row.
    pub tokens: usize,
    /// Features per token (`input_dim = tokens * token_features`).
    pub token_features: usize,
    /// Model width.
    pub d_model: usize,
    /// Number of encoder layers.
    pub layers: usize,
    /// Attention heads per layer (must divide `d_model`).
    pub attention_heads: usize,
    /// Hidden width of the feed-forward block.
    pub feedforward: usize,
    /// Dropout probability in `[0, 1)`.
    pub dropout: f32,
    /// Readout of [`HeadRole::ForwardActions`] heads.
    pub forward_readout: TokenReadout,
    /// Readout of [`HeadRole::BackwardActions`] heads.
    pub backward_readout: TokenReadout,
    /// Output heads, in output order (at least one).
    pub heads: Vec<HeadSpec>,
    /// Learned scalars, in order.
    pub scalars: Vec<ScalarSpec>,
}

impl TransformerSpec {
    /// Features per input row.
    pub fn input_dim(&self) -> usize {
        self.tokens * self.token_features
    }

    /// Checks sizes, names and that every action head has its readout's width.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] naming the offending field or head.
    pub fn validate(&self) -> Result<(), NnError> {
        let bad = |m: String| Err(NnError::InvalidSpec(m));
        for (name, v) in [
            ("tokens", self.tokens),
            ("token_features", self.token_features),
            ("d_model", self.d_model),
            ("attention_heads", self.attention_heads),
            ("feedforward", self.feedforward),
        ] {
            if v == 0 {
                return bad(format!("transformer {name} must be at least 1, found 0"));
            }
        }
        if !self.d_model.is_multiple_of(self.attention_heads) {
            return bad(format!(
                "transformer attention_heads ({}) must divide d_model ({})",
                self.attention_heads, self.d_model
            ));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return bad(format!(
                "transformer dropout must be in [0, 1), found {}",
                self.dropout
            ));
        }
        for (side, r) in [
            ("forward", self.forward_readout),
            ("backward", self.backward_readout),
        ] {
            if r == (TokenReadout::TokenWord { words: 0 }) {
                return bad(format!("transformer {side} readout has 0 words per token"));
            }
        }
        validate_heads(&self.heads, &self.scalars)?;
        for h in &self.heads {
            let want = match h.role {
                HeadRole::Pooled => continue,
                HeadRole::ForwardActions => self.forward_readout.dim(self.tokens),
                HeadRole::BackwardActions => self.backward_readout.dim(self.tokens),
            };
            if h.dim != want {
                return bad(format!(
                    "head `{}` ({:?}) must have {want} outputs for {} tokens, found {}",
                    h.name, h.role, self.tokens, h.dim
                ));
            }
        }
        Ok(())
    }
}

/// The graph policy network of the paper's molecule experiments (GraphAgent v4 of Bengio et al.
/// 2021 as Tiapkin et al. 2024 run it), over graphs written in the input row as
/// `softgfn_core::GraphLayout` describes: from index `offset`, `max_nodes` node-type codes,
/// `4 * max_edges` edge codes `(src, dst, type_src, type_dst)` and `2 * max_stems` stem codes
/// `(node, type)`, each field `value + 1` and 0 when absent. Other input values are ignored.
///
/// With `lrelu` the leaky ReLU (slope 0.01) and `width` = `w`:
///
/// ```text
/// out = block2emb(node_embedding[type])        block2emb = Linear(w,w) -> lrelu -> Linear(w,w)
/// h = out
/// repeat steps:
///     msg_e = (h[src_e] . edge_embedding[type_src_e]) * edge_embedding[type_dst_e]
///     m_i   = lrelu(mean_{e into i} msg_e + conv.root(h_i))       (0 without incoming edges)
///     h     = GRUCell(m, h)
/// stem k:  stem2pred([h[node_k], stem_embedding[type_k]])    Linear(2w,w) -> lrelu -> Linear(w,w) -> lrelu -> head
/// graph:   global2pred(mean_i h_i)                           Linear(w,w) -> lrelu -> head
/// ```
///
/// This is the paper's NNConv with an identity edge network: the edge weight is the outer
/// product of the two end embeddings, so a message is a dot product times a vector. Edges are
/// directed; a node without incoming edges gets no messages.
///
/// Heads by role: a [`HeadRole::ForwardActions`] head has `graph_actions` per-graph outputs
/// (from the graph readout) followed by `stem_actions` per stem slot (from the stem readout),
/// `graph_actions + max_stems * stem_actions` in all, 0 at absent stems; a
/// [`HeadRole::Pooled`] head reads the graph readout; a [`HeadRole::BackwardActions`] head has
/// one output per node slot (a linear map of the node's state, 0 at absent nodes). Each head has
/// its own last linear layer; the layers before it are shared (group `torso`).
///
/// The computation is in `f32` (the paper's network is `float64`).
#[derive(Clone, Debug, PartialEq)]
pub struct GraphSpec {
    /// Features per input row.
    pub input_dim: usize,
    /// Index of the first graph field in a row.
    pub offset: usize,
    /// Node slots per graph.
    pub max_nodes: usize,
    /// Number of node types.
    pub node_types: usize,
    /// Edge slots per graph.
    pub max_edges: usize,
    /// Number of edge-end types.
    pub edge_types: usize,
    /// Stem slots per graph.
    pub max_stems: usize,
    /// Number of stem types.
    pub stem_types: usize,
    /// Forward outputs per stem.
    pub stem_actions: usize,
    /// Per-graph forward outputs (first in a forward head).
    pub graph_actions: usize,
    /// Width of every hidden vector.
    pub width: usize,
    /// Message-passing steps.
    pub steps: usize,
    /// Output heads, in output order (at least one).
    pub heads: Vec<HeadSpec>,
    /// Learned scalars, in order.
    pub scalars: Vec<ScalarSpec>,
}

impl GraphSpec {
    /// Number of input values the graph fields take (from `offset` on).
    pub fn graph_features(&self) -> usize {
        self.max_nodes + 4 * self.max_edges + 2 * self.max_stems
    }

    /// Checks sizes, names and that every head has its role's width.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] naming the offending field or head.
    pub fn validate(&self) -> Result<(), NnError> {
        let bad = |m: String| Err(NnError::InvalidSpec(m));
        for (name, v) in [
            ("max_nodes", self.max_nodes),
            ("node_types", self.node_types),
            ("edge_types", self.edge_types),
            ("max_stems", self.max_stems),
            ("stem_types", self.stem_types),
            ("stem_actions", self.stem_actions),
            ("width", self.width),
        ] {
            if v == 0 {
                return bad(format!("graph {name} must be at least 1, found 0"));
            }
        }
        if self.offset + self.graph_features() > self.input_dim {
            return bad(format!(
                "graph fields {}..{} lie past input_dim {}",
                self.offset,
                self.offset + self.graph_features(),
                self.input_dim
            ));
        }
        validate_heads(&self.heads, &self.scalars)?;
        for h in &self.heads {
            let want = match h.role {
                HeadRole::Pooled => continue,
                HeadRole::ForwardActions => self.graph_actions + self.max_stems * self.stem_actions,
                HeadRole::BackwardActions => self.max_nodes,
            };
            if h.dim != want {
                return bad(format!(
                    "head `{}` ({:?}) must have {want} outputs for this graph layout, found {}",
                    h.name, h.role, h.dim
                ));
            }
        }
        Ok(())
    }
}

/// Any network architecture a [`Model`](crate::Model) can be built from.
#[derive(Clone, Debug, PartialEq)]
pub enum NetSpec {
    /// A multi-layer perceptron.
    Mlp(MlpSpec),
    /// A transformer encoder over tokens.
    Transformer(TransformerSpec),
    /// The graph policy network.
    Graph(GraphSpec),
}

impl NetSpec {
    /// Features per input row.
    pub fn input_dim(&self) -> usize {
        match self {
            NetSpec::Mlp(s) => s.input_dim,
            NetSpec::Transformer(s) => s.input_dim(),
            NetSpec::Graph(s) => s.input_dim,
        }
    }

    /// The heads, in output order.
    pub fn heads(&self) -> &[HeadSpec] {
        match self {
            NetSpec::Mlp(s) => &s.heads,
            NetSpec::Transformer(s) => &s.heads,
            NetSpec::Graph(s) => &s.heads,
        }
    }

    /// The learned scalars, in order.
    pub fn scalars(&self) -> &[ScalarSpec] {
        match self {
            NetSpec::Mlp(s) => &s.scalars,
            NetSpec::Transformer(s) => &s.scalars,
            NetSpec::Graph(s) => &s.scalars,
        }
    }

    /// Head output dims in spec order.
    pub fn head_dims(&self) -> Vec<usize> {
        self.heads().iter().map(|h| h.dim).collect()
    }

    /// Checks the spec.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] naming the problem.
    pub fn validate(&self) -> Result<(), NnError> {
        match self {
            NetSpec::Mlp(s) => s.validate(),
            NetSpec::Transformer(s) => s.validate(),
            NetSpec::Graph(s) => s.validate(),
        }
    }
}

/// PyTorch-style Adam with L2 weight decay added to the gradient (not AdamW).
///
/// Per step `t` (counted per parameter group, starting at 1):
/// `g += wd * theta; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;`
/// `theta -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Default learning rate of every group (see [`OptimizerSpec::group_learning_rates`]).
    pub learning_rate: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// L2 penalty coefficient added to the gradient (applies to every parameter, scalars too).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Checks that every hyper-parameter is finite and in range.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] naming the offending field.
    pub fn validate(&self) -> Result<(), NnError> {
        let check = |name: &str, v: f32, ok: bool, range: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(NnError::InvalidSpec(format!(
                    "adam {name} must be {range}, found {v}"
                )))
            }
        };
        check(
            "learning_rate",
            self.learning_rate,
            self.learning_rate >= 0.0,
            ">= 0",
        )?;
        check(
            "beta1",
            self.beta1,
            (0.0..1.0).contains(&self.beta1),
            "in [0, 1)",
        )?;
        check(
            "beta2",
            self.beta2,
            (0.0..1.0).contains(&self.beta2),
            "in [0, 1)",
        )?;
        check("eps", self.eps, self.eps > 0.0, "> 0")?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            ">= 0",
        )
    }
}

/// Optimizer settings: Adam plus per-group learning-rate overrides.
///
/// Every parameter belongs to exactly one group: `torso` (all hidden layers; present even when
/// there are none), `head:<head name>` (weight and bias of that head) and `scalar:<scalar name>`.
/// `group_learning_rates` overrides the learning rate of the named groups, e.g.
/// `("scalar:log_z", 0.1)`; an unknown group name is an [`NnError::UnknownGroup`] listing the
/// valid ones. Each group keeps its own step counter (for bias correction and checkpoints).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OptimizerSpec {
    /// Adam hyper-parameters (its `learning_rate` is the default of every group).
    pub adam: AdamConfig,
    /// `(group name, learning rate)` overrides; later entries win.
    pub group_learning_rates: Vec<(String, f32)>,
}
