//! # softgfn-bench
//!
//! The benchmark harness of softgfn: how users compare algorithms on their environments and how
//! softgfn reproduces the paper.
//!
//! - [`suite`]: suites in TOML (environments x algorithms x seeds x budget, targets), sharding;
//! - [`runner`]: parallel worker processes (`softgfn train`), results written as they come,
//!   `--resume` after a kill, merging of shards;
//! - [`report`] and [`plot`]: a Markdown table per environment and SVG/PNG plots of every metric
//!   against trajectories and wall time.
//!
//! The `softgfn bench run | report | merge` commands drive it.

pub mod error;
pub mod plot;
pub mod report;
pub mod runner;
pub mod suite;

pub use error::{BenchError, Result};
pub use report::{ReportFiles, ReportOptions, write_report, write_report_with};
pub use runner::{Hardware, Provenance, RunOptions, RunProgress, RunSummary, merge, run_suite};
pub use suite::{Cell, Shard, Suite, Target};
