//! Environment plugins on the command line: the global flags `--plugin PATH` (repeatable) and
//! `--plugin-dir DIR` (every `*.so`, `*.dylib`, `*.dll` in it), the variable
//! `SOFTGFN_PLUGIN_PATH` (files or directories separated by ':', ';' on Windows), and the
//! `softgfn plugins list|check` subcommands.
//!
//! Plugins load before any subcommand runs. A plugin that fails to load makes every command fail
//! with its error, except `softgfn plugins ...`, which reports it and goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use softgfn_plugin::host::{self, Plugin};

/// The environment variable with extra plugin paths.
pub const PLUGIN_PATH_VAR: &str = "SOFTGFN_PLUGIN_PATH";

/// The global plugin flags.
#[derive(Args, Debug, Default)]
pub struct PluginArgs {
    /// Load an environment plugin (a shared library built with softgfn-plugin); repeatable.
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    pub plugin: Vec<PathBuf>,
    /// Load every plugin library (*.so, *.dylib, *.dll) in a directory; repeatable.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    pub plugin_dir: Vec<PathBuf>,
}

/// `softgfn plugins ...`.
#[derive(Subcommand, Debug)]
pub enum PluginsAction {
    /// List every plugin found (--plugin, --plugin-dir, SOFTGFN_PLUGIN_PATH): loaded or failed
    /// and why, and its environments.
    List,
    /// Load a plugin and run check_env on each of its environments with its default parameters.
    Check {
        /// The plugin library.
        path: PathBuf,
        /// Random rollouts per environment.
        #[arg(long, default_value_t = 64)]
        rollouts: usize,
        /// Seed of the rollouts.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// One plugin library found, and what became of it.
#[derive(Debug)]
pub struct Found {
    /// How it was found (`--plugin`, `--plugin-dir DIR`, `SOFTGFN_PLUGIN_PATH`).
    pub origin: String,
    /// The path.
    pub path: PathBuf,
    /// The loaded plugin, or why it failed.
    pub outcome: std::result::Result<Arc<Plugin>, String>,
}

/// Candidates: `(origin, path, error found while looking)`.
type Candidate = (String, PathBuf, Option<String>);

fn scan_dir(dir: &Path, origin: &str, out: &mut Vec<Candidate>) {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut libs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && host::is_library(p))
                .collect();
            libs.sort();
            out.extend(libs.into_iter().map(|p| (origin.to_string(), p, None)));
        }
        Err(e) => out.push((
            origin.to_string(),
            dir.to_path_buf(),
            Some(format!(
                "cannot read the plugin directory {}: {e}",
                dir.display()
            )),
        )),
    }
}

/// Every plugin library named by the flags and the environment variable, in that order, each
/// once.
fn discover(args: &PluginArgs) -> Vec<Candidate> {
    let mut out = Vec::new();
    for p in &args.plugin {
        if p.is_dir() {
            scan_dir(p, "--plugin", &mut out);
        } else {
            out.push(("--plugin".into(), p.clone(), None));
        }
    }
    for d in &args.plugin_dir {
        scan_dir(d, &format!("--plugin-dir {}", d.display()), &mut out);
    }
    if let Some(var) = std::env::var_os(PLUGIN_PATH_VAR) {
        for p in std::env::split_paths(&var).filter(|p| !p.as_os_str().is_empty()) {
            if p.is_dir() {
                scan_dir(&p, PLUGIN_PATH_VAR, &mut out);
            } else if p.exists() {
                out.push((PLUGIN_PATH_VAR.into(), p, None));
            } else {
                let msg = format!(
                    "{} names {}, which does not exist",
                    PLUGIN_PATH_VAR,
                    p.display()
                );
                out.push((PLUGIN_PATH_VAR.into(), p, Some(msg)));
            }
        }
    }
    let mut seen = Vec::new();
    out.retain(|(_, p, _)| {
        let key = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    out
}

/// Loads every plugin found. With `lenient` (the `plugins` subcommands) failures are recorded
/// and loading goes on; otherwise the first failure is the error.
pub fn load(args: &PluginArgs, lenient: bool) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    for (origin, path, problem) in discover(args) {
        let outcome = match problem {
            Some(msg) => Err(msg),
            None => host::load(&path).map_err(|e| e.to_string()),
        };
        if let (Err(msg), false) = (&outcome, lenient) {
            bail!("{msg}");
        }
        found.push(Found {
            origin,
            path,
            outcome,
        });
    }
    Ok(found)
}

/// Runs `softgfn plugins ...`.
pub fn run(action: PluginsAction, found: &[Found]) -> Result<()> {
    match action {
        PluginsAction::List => {
            list(found);
            Ok(())
        }
        PluginsAction::Check {
            path,
            rollouts,
            seed,
        } => {
            for f in found {
                if let Err(msg) = &f.outcome {
                    eprintln!("warning: {msg}");
                }
            }
            check(&path, rollouts, seed)
        }
    }
}

/// How the bare name of a plugin environment resolves now.
fn bare_name_note(qualified: &str, bare: &str) -> String {
    match softgfn_core::find_env(bare) {
        Ok(info) if info.name == qualified => format!("(also `{bare}`)"),
        _ => format!("(`{bare}` is ambiguous: use the qualified name)"),
    }
}

fn list(found: &[Found]) {
    if found.is_empty() {
        println!(
            "no plugins found: pass --plugin PATH or --plugin-dir DIR, or set {PLUGIN_PATH_VAR}"
        );
        return;
    }
    for f in found {
        match &f.outcome {
            Ok(p) => {
                let m = p.manifest();
                println!(
                    "loaded  {} {} from {} (built against softgfn {}; found by {})",
                    m.name,
                    m.version,
                    p.path().display(),
                    m.softgfn_version,
                    f.origin
                );
                for e in &m.environments {
                    let q = format!("{}/{}", m.name, e.name);
                    println!(
                        "        {q:<28} {} {}",
                        e.summary,
                        bare_name_note(&q, &e.name)
                    );
                }
            }
            Err(msg) => {
                println!("failed  {} (found by {})", f.path.display(), f.origin);
                println!("        {msg}");
            }
        }
    }
    let failed = found.iter().filter(|f| f.outcome.is_err()).count();
    println!(
        "{} plugin(s): {} loaded, {failed} failed",
        found.len(),
        found.len() - failed
    );
}

fn check(path: &Path, rollouts: usize, seed: u64) -> Result<()> {
    let plugin = host::load(path)?;
    let opts = softgfn_core::CheckOptions {
        rollouts,
        seed,
        ..Default::default()
    };
    let envs = &plugin.manifest().environments;
    let mut failed = 0;
    for e in envs {
        let q = format!("{}/{}", plugin.name(), e.name);
        let result = plugin
            .create(&e.name, &e.default_params)
            .and_then(|env| softgfn_core::check_env_with(&env, &opts));
        match result {
            Ok(report) => println!("ok      {q}: {report}"),
            Err(err) => {
                failed += 1;
                println!("FAILED  {q}: {err}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} environment(s) of plugin {} failed check_env",
            envs.len(),
            plugin.name()
        );
    }
    Ok(())
}
