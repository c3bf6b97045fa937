//! Algorithms written outside the softgfn workspace crates, against their public API only:
//!
//! - [`lpv`]: the log-partition-variance objective (`name = "lpv"`), an [`Objective`] trained by
//!   the workspace's balance algorithm;
//! - [`twin_q`]: soft twin-Q (`name = "soft_twin_q"`), a [`SoftRlAgent`] driven by the
//!   workspace's off-policy driver.
//!
//! Both register statically (`typetag` for the config, `inventory` for the listing); the binary
//! `softgfn-custom` is `softgfn_cli::main()` linked with this crate, so `algos list`, `train` and
//! `bench run` know them.
//!
//! [`Objective`]: softgfn_train::Objective
//! [`SoftRlAgent`]: softgfn_softrl::SoftRlAgent

pub mod lpv;
pub mod twin_q;

pub use lpv::{LogPartitionVariance, LpvConfig};
pub use twin_q::{SoftTwinQ, SoftTwinQConfig};

// ANCHOR: register
softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "lpv",
        summary: "log-partition variance: TB with log Z replaced by the batch mean of log R + sum log P_B - sum log P_F",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(LpvConfig::default()),
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "soft_twin_q",
        summary: "soft twin-Q: two Q heads, the soft target bootstraps on their minimum",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(SoftTwinQConfig::default()),
    }
}
// ANCHOR_END: register
