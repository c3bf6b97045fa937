//! The error type of `softgfn-core`.

/// Everything that can go wrong in `softgfn-core`: environments, enumeration, exact answers,
/// the conformance checker and the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A buffer passed to a batched call has the wrong length.
    #[error("{what}: expected a buffer of {expected} values, found {found}")]
    BufferLength {
        /// Which buffer (e.g. "states of hypergrid.step").
        what: String,
        /// Expected number of values.
        expected: usize,
        /// Number of values found.
        found: usize,
    },
    /// A state row that the environment cannot interpret.
    #[error("{env}: invalid state {state:?}: {reason}")]
    InvalidState {
        /// Environment name.
        env: String,
        /// The offending row.
        state: Vec<i32>,
        /// What is wrong with it.
        reason: String,
    },
    /// An action that is not valid in the given state.
    #[error("{env}: action {action} is not valid in state {state:?}: {reason}")]
    InvalidAction {
        /// Environment name.
        env: String,
        /// The state row.
        state: Vec<i32>,
        /// The action index.
        action: u32,
        /// Why it is invalid.
        reason: String,
    },
    /// A reward that is not a finite positive number (its log is NaN or infinite).
    #[error(
        "{env}: log_reward of state {state:?} is {value}; rewards must be finite and positive (log-reward finite)"
    )]
    NonFiniteReward {
        /// Environment name.
        env: String,
        /// The terminal state.
        state: Vec<i32>,
        /// The returned log-reward.
        value: f64,
    },
    /// An environment configuration value out of range or malformed.
    #[error("{env}: invalid parameter `{field}` = {value}: expected {expected}")]
    InvalidParameter {
        /// Environment name.
        env: String,
        /// Parameter name (as in the config, e.g. `side`).
        field: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// Environment parameters that do not parse (unknown keys, wrong types).
    #[error("{env}: bad parameters: {message}")]
    BadParameters {
        /// Environment name.
        env: String,
        /// Parser message (names the key and the valid keys).
        message: String,
    },
    /// No environment with this name is registered.
    #[error("unknown environment `{name}`; available: {available}. {hint}")]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// Comma-separated registered names.
        available: String,
        /// What to do: for a plugin's environment (a qualified name `<plugin>/<env>`, the form a
        /// saved run config records), load the plugin with `--plugin`.
        hint: String,
    },
    /// Two registrations use the same name.
    #[error("environment name `{name}` is registered twice: by {first} and by {second}")]
    DuplicateEnvironment {
        /// The clashing name.
        name: String,
        /// Where the first registration comes from.
        first: String,
        /// Where the second registration comes from.
        second: String,
    },
    /// The state space is too large to enumerate with the given limit.
    #[error(
        "{env}: cannot enumerate {states} states (limit {limit}); exact answers need a smaller instance"
    )]
    TooManyStates {
        /// Environment name.
        env: String,
        /// Number of states (or a description when it overflows).
        states: String,
        /// The limit in force.
        limit: u64,
    },
    /// The environment does not support an optional capability.
    #[error("{env}: {capability} is not supported by this environment")]
    Unsupported {
        /// Environment name.
        env: String,
        /// Missing capability (e.g. "enumeration").
        capability: String,
    },
    /// The state graph violates a structural property (found while enumerating).
    #[error("{env}: {property} violated: {details}")]
    Structure {
        /// Environment name.
        env: String,
        /// The property (e.g. "acyclicity").
        property: String,
        /// Details naming states and actions.
        details: String,
    },
    /// A conformance check of [`crate::check_env`] failed.
    #[error("check_env failed for {env}: property `{property}` violated: {details}")]
    CheckFailed {
        /// Environment name.
        env: String,
        /// The violated property, one of [`crate::check::PROPERTIES`].
        property: &'static str,
        /// Details naming states and actions.
        details: String,
    },
    /// Inputs of a metric or distribution do not fit together.
    #[error("metric {metric}: {details}")]
    Metric {
        /// Metric name.
        metric: String,
        /// What is wrong.
        details: String,
    },
    /// An error reported by an environment implementation (e.g. a plugin).
    #[error("{env}: {message}")]
    Environment {
        /// Environment name.
        env: String,
        /// The message.
        message: String,
    },
}

/// Result alias of `softgfn-core`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
