//! Which network an algorithm builds: the MLP on state features (default) or the transformer
//! encoder over the environment's token sequence.
//!
//! Every algorithm config carries `network = "mlp" | "transformer"` next to its MLP sizes
//! (`hidden_dim`, `hidden_layers`) and a `[algo.transformer]` table:
//!
//! ```toml
//! [algo]
//! name = "tb"
//! network = "transformer"
//!
//! [algo.transformer]
//! layers = 3
//! d_model = 64
//! attention_heads = 8
//! feedforward = 64
//! dropout = 0.1
//! ```
//!
//! The defaults are the paper's bit-sequence network. A transformer needs an environment that
//! describes its features and actions as tokens ([`Environment::sequence_layout`]; `bitseq`
//! does); any other environment is a clear error.

use serde::{Deserialize, Serialize};
use softgfn_core::{Environment, TokenActions};
use softgfn_nn::{
    Device, HeadSpec, MlpSpec, Model, NetSpec, OptimizerSpec, ScalarSpec, TokenReadout,
    TransformerSpec,
};

use crate::algorithm::check;
use crate::error::{Result, TrainError};

/// The network architecture of an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// `hidden_layers` ReLU layers of width `hidden_dim` on the state features.
    #[default]
    Mlp,
    /// The transformer encoder of `[algo.transformer]` over the environment's tokens.
    Transformer,
}

/// Sizes of the transformer encoder (defaults: the paper's bit-sequence network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerConfig {
    /// Encoder layers.
    pub layers: usize,
    /// Model width.
    pub d_model: usize,
    /// Attention heads (must divide `d_model`).
    pub attention_heads: usize,
    /// Feed-forward width.
    pub feedforward: usize,
    /// Dropout probability in `[0, 1)`, active only in training forwards.
    pub dropout: f64,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            layers: 3,
            d_model: 64,
            attention_heads: 8,
            feedforward: 64,
            dropout: 0.1,
        }
    }
}

impl TransformerConfig {
    /// Checks every size and the dropout probability.
    ///
    /// # Errors
    /// [`TrainError::InvalidValue`] naming the `algo.transformer.*` key.
    pub fn validate(&self) -> Result<()> {
        check::in_range("algo.transformer.layers", self.layers, 1, 64)?;
        check::in_range("algo.transformer.d_model", self.d_model, 1, 1 << 14)?;
        check::in_range(
            "algo.transformer.attention_heads",
            self.attention_heads,
            1,
            self.d_model.max(1),
        )?;
        if !self.d_model.is_multiple_of(self.attention_heads) {
            return Err(TrainError::invalid(
                "algo.transformer.attention_heads",
                self.attention_heads,
                &format!("a divisor of algo.transformer.d_model ({})", self.d_model),
            ));
        }
        check::in_range("algo.transformer.feedforward", self.feedforward, 1, 1 << 16)?;
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(TrainError::invalid(
                "algo.transformer.dropout",
                self.dropout,
                "a number in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// Everything that chooses and sizes an algorithm's network.
#[derive(Clone, Copy, Debug)]
pub struct NetworkChoice<'a> {
    /// Architecture.
    pub kind: NetworkKind,
    /// MLP hidden width.
    pub hidden_dim: usize,
    /// MLP hidden layers.
    pub hidden_layers: usize,
    /// Transformer sizes.
    pub transformer: &'a TransformerConfig,
}

fn readout(actions: TokenActions) -> TokenReadout {
    match actions {
        TokenActions::TokenWord { words } => TokenReadout::TokenWord { words },
        TokenActions::Token => TokenReadout::Token,
    }
}

/// The network spec for `env` with these heads and scalars.
///
/// # Errors
/// [`TrainError::Unsupported`] when a transformer is asked for an environment without a
/// [`sequence layout`](Environment::sequence_layout); a core error when the layout does not fit
/// the environment's spec.
pub fn network_spec(
    algo: &str,
    choice: &NetworkChoice<'_>,
    env: &dyn Environment,
    heads: Vec<HeadSpec>,
    scalars: Vec<ScalarSpec>,
) -> Result<NetSpec> {
    let spec = env.spec();
    Ok(match choice.kind {
        NetworkKind::Mlp => NetSpec::Mlp(MlpSpec {
            input_dim: spec.feature_dim,
            hidden_dims: vec![choice.hidden_dim; choice.hidden_layers],
            heads,
            scalars,
        }),
        NetworkKind::Transformer => {
            let layout = env
                .sequence_layout()
                .ok_or_else(|| TrainError::Unsupported {
                    algo: algo.to_string(),
                    message: format!(
                        "network = \"transformer\" needs an environment whose states are token \
                     sequences (such as bitseq); {} does not describe its states as tokens, so \
                     use network = \"mlp\"",
                        spec.name
                    ),
                })?;
            layout.validate(spec)?;
            let t = choice.transformer;
            NetSpec::Transformer(TransformerSpec {
                tokens: layout.tokens,
                token_features: layout.token_features,
                d_model: t.d_model,
                layers: t.layers,
                attention_heads: t.attention_heads,
                feedforward: t.feedforward,
                dropout: t.dropout as f32,
                forward_readout: readout(layout.forward),
                backward_readout: readout(layout.backward),
                heads,
                scalars,
            })
        }
    })
}

/// Builds the chosen network for `env` (see [`network_spec`]).
///
/// # Errors
/// As [`network_spec`], plus tensor-side errors of [`Model::new`].
#[allow(clippy::too_many_arguments)]
pub fn build_model(
    algo: &str,
    choice: &NetworkChoice<'_>,
    env: &dyn Environment,
    heads: Vec<HeadSpec>,
    scalars: Vec<ScalarSpec>,
    optimizer: &OptimizerSpec,
    device: Device,
    rng: &mut softgfn_core::Rng,
) -> Result<Model> {
    let spec = network_spec(algo, choice, env, heads, scalars)?;
    Ok(Model::new(&spec, optimizer, device, rng)?)
}
