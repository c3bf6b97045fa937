//! Which network an algorithm builds: the MLP on state features (default), the transformer
//! encoder over the environment's token sequence, or the graph network over the environment's
//! graph.
//!
//! Every algorithm config carries `network = "mlp" | "transformer" | "graph"` next to its MLP
//! sizes (`hidden_dim`, `hidden_layers`) and a `[algo.transformer]` table:
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
//!
//! `network = "graph"` is the paper's molecule network (GraphAgent v4, 256 wide, 10
//! message-passing steps; [`softgfn_nn::GraphSpec`]) on an environment that describes its states
//! as graphs ([`Environment::graph_layout`]; `sehfrag` does). Other sizes are a table instead
//! of the string:
//!
//! ```toml
//! [algo.network.graph]
//! width = 32
//! steps = 3
//! precision = "float32"
//! ```
//!
//! The paper's network computes in `float64`; softgfn's tensor backend is `f32`, so
//! `precision = "float64"` is refused. What `f32` changes: activations and parameters carry
//! about 7 significant digits instead of 16, so `log` probabilities of rare actions (below about
//! `1e-7` relative to the largest) and sums over 3,151 logits are rounded more coarsely; Adam's
//! updates are unaffected in practice. Losses are still computed on the host in `f64`.

use serde::{Deserialize, Serialize};
use softgfn_core::{Environment, TokenActions};
use softgfn_nn::{
    Device, GraphSpec, HeadRole, HeadSpec, MlpSpec, Model, NetSpec, OptimizerSpec, ScalarSpec,
    TokenReadout, TransformerSpec,
};

use crate::algorithm::check;
use crate::error::{Result, TrainError};

/// The network architecture of an algorithm.
///
/// Written as a string (`"mlp"`, `"transformer"`, `"graph"`: the graph network at the paper's
/// size) or, for other graph sizes, as a table `{ graph = { width, steps, precision } }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NetworkKind {
    /// `hidden_layers` ReLU layers of width `hidden_dim` on the state features.
    #[default]
    Mlp,
    /// The transformer encoder of `[algo.transformer]` over the environment's tokens.
    Transformer,
    /// The graph network over the environment's graph.
    Graph(GraphConfig),
}

/// Numeric precision of the graph network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats (the only precision the tensor backend offers).
    #[default]
    Float32,
    /// 64-bit floats, as the paper ran its network: refused with an explanation.
    Float64,
}

/// Sizes of the graph network (defaults: the paper's molecule network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Width of every hidden vector (the paper: 256).
    pub width: usize,
    /// Message-passing steps (the paper: 10).
    pub steps: usize,
    /// Numeric precision; only `float32` is available.
    pub precision: Precision,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            width: 256,
            steps: 10,
            precision: Precision::Float32,
        }
    }
}

impl GraphConfig {
    /// Checks the sizes and the precision.
    ///
    /// # Errors
    /// [`TrainError::InvalidValue`] naming the `algo.network.graph.*` key.
    pub fn validate(&self) -> Result<()> {
        check::in_range("algo.network.graph.width", self.width, 1, 1 << 14)?;
        check::in_range("algo.network.graph.steps", self.steps, 0, 1000)?;
        if self.precision == Precision::Float64 {
            return Err(TrainError::invalid(
                "algo.network.graph.precision",
                "float64",
                "\"float32\": the tensor backend computes in f32 only (the paper's float64 \
                 network is approximated with about 7 significant digits; losses stay f64)",
            ));
        }
        Ok(())
    }
}

impl Serialize for NetworkKind {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            NetworkKind::Mlp => serializer.serialize_str("mlp"),
            NetworkKind::Transformer => serializer.serialize_str("transformer"),
            NetworkKind::Graph(g) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("graph", g)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for NetworkKind {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        const NAMES: &[&str] = &["mlp", "transformer", "graph"];
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NetworkKind;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "\"mlp\", \"transformer\", \"graph\" or a table { graph = { width, steps, \
                     precision } }",
                )
            }

            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<NetworkKind, E> {
                match v {
                    "mlp" => Ok(NetworkKind::Mlp),
                    "transformer" => Ok(NetworkKind::Transformer),
                    "graph" => Ok(NetworkKind::Graph(GraphConfig::default())),
                    other => Err(E::unknown_variant(other, NAMES)),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<NetworkKind, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(serde::de::Error::invalid_length(0, &self));
                };
                if key != "graph" {
                    return Err(serde::de::Error::unknown_field(&key, &["graph"]));
                }
                let config: GraphConfig = map.next_value()?;
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(serde::de::Error::unknown_field(&extra, &["graph"]));
                }
                Ok(NetworkKind::Graph(config))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
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
    /// Also apply dropout (train mode) in the forwards that sample training trajectories, as the
    /// paper's code does; `false` (the default) samples in evaluation mode. Masks are drawn from
    /// the sampling RNG, so runs stay reproducible; with `dropout = 0` this changes nothing.
    /// Evaluation (metrics, `log Z` estimators, `softgfn sample`) is always in evaluation mode.
    pub sampling_dropout: bool,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            layers: 3,
            d_model: 64,
            attention_heads: 8,
            feedforward: 64,
            dropout: 0.1,
            sampling_dropout: false,
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

impl NetworkChoice<'_> {
    /// Whether the forwards that sample training trajectories apply train-mode dropout: a
    /// transformer with `sampling_dropout = true` (any dropout probability; with 0 the masks
    /// are empty and nothing changes).
    pub fn sampling_dropout(&self) -> bool {
        matches!(self.kind, NetworkKind::Transformer) && self.transformer.sampling_dropout
    }
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
/// [`sequence layout`](Environment::sequence_layout), or the graph network for one without a
/// [`graph layout`](Environment::graph_layout); [`TrainError::InvalidValue`] for bad graph
/// sizes or `precision = "float64"`; a core error when the layout does not fit the
/// environment's spec.
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
        NetworkKind::Graph(g) => {
            g.validate()?;
            let layout = env.graph_layout().ok_or_else(|| TrainError::Unsupported {
                algo: algo.to_string(),
                message: format!(
                    "network = \"graph\" needs an environment whose states are graphs (such as \
                     sehfrag); {} does not describe its states as a graph, so use network = \
                     \"mlp\"",
                    spec.name
                ),
            })?;
            layout.validate(spec)?;
            if !layout.node_backward_actions
                && heads.iter().any(|h| h.role == HeadRole::BackwardActions)
            {
                return Err(TrainError::Unsupported {
                    algo: algo.to_string(),
                    message: format!(
                        "a learned backward policy on network = \"graph\" needs backward \
                         actions that act on nodes; {} has other backward actions, so use the \
                         uniform backward policy",
                        spec.name
                    ),
                });
            }
            NetSpec::Graph(GraphSpec {
                input_dim: spec.feature_dim,
                offset: layout.offset,
                max_nodes: layout.max_nodes,
                node_types: layout.node_types,
                max_edges: layout.max_edges,
                edge_types: layout.edge_types,
                max_stems: layout.max_stems,
                stem_types: layout.stem_types,
                stem_actions: layout.stem_actions,
                graph_actions: layout.graph_actions,
                width: g.width,
                steps: g.steps,
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
