//! The host loader against real plugin libraries: the example sets plugin, the hypergrid built
//! as a cdylib, the sEH fragment molecules, and the fixtures (wrong ABI, a plugin of ABI
//! version 1, not a plugin, malformed manifest, incompatible softgfn version, panicking
//! environment). Every error message is pinned whole.
//!
//! The libraries are built by `scripts/build-plugins.sh` into target/plugins/release (`.ci/run`
//! runs it before the tests).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use softgfn_core::exact::StateGraph;
use softgfn_core::{Environment, EnvironmentExt, check_env, math::logsumexp, readable_state};
use softgfn_hypergrid::{Hypergrid, HypergridConfig};
use softgfn_plugin::host::{self, PluginEnv, library_file_name};
use softgfn_plugin::{ABI_VERSION, OLDEST_ABI_VERSION, PluginError};

/// The built library of a crate, or a failure saying how to build it.
fn lib(crate_name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins/release");
    let p = dir.join(library_file_name(crate_name));
    assert!(
        p.exists(),
        "{} is missing: build the plugin libraries first with scripts/build-plugins.sh \
         (CARGO_TARGET_DIR=target/plugins cargo build --release -p softgfn-hypergrid -p softgfn-sets \
         -p softgfn-plugin-fixture-... --features softgfn-hypergrid/dynamic,softgfn-sets/dynamic)",
        p.display()
    );
    p
}

/// The message with the library's canonical path replaced by `<PATH>`.
fn redacted(msg: impl ToString, path: &Path) -> String {
    let canonical = std::fs::canonicalize(path).unwrap();
    msg.to_string()
        .replace(&canonical.display().to_string(), "<PATH>")
}

fn load_err(path: &Path) -> String {
    match host::load(path) {
        Ok(p) => panic!("{} loaded as plugin {}", path.display(), p.name()),
        Err(e) => redacted(e, path),
    }
}

#[test]
fn the_sets_plugin_passes_check_env_through_the_abi() {
    let path = lib("softgfn-sets");
    let plugin = host::load(&path).unwrap();
    let m = plugin.manifest();
    assert_eq!(m.name, "softgfn-sets");
    assert_eq!(m.softgfn_version, softgfn_plugin::SOFTGFN_VERSION);
    assert_eq!(m.environments.len(), 1);
    assert_eq!(m.environments[0].name, "sets");
    assert_eq!(
        m.environments[0].default_params,
        serde_json::json!({"n": 6, "max_size": 4, "seed": 0, "scale": 1.0})
    );
    // Loading again returns the same plugin.
    assert!(Arc::ptr_eq(&plugin, &host::load(&path).unwrap()));
    assert!(host::loaded().iter().any(|p| Arc::ptr_eq(p, &plugin)));

    // Through the core registry, by qualified and bare name.
    for name in ["softgfn-sets/sets", "sets"] {
        let env = softgfn_core::build_env(name, &serde_json::Value::Null).unwrap();
        let report = check_env(env.as_ref()).unwrap();
        assert!(report.exhaustive);
        assert_eq!(report.states_checked, 1 + 6 + 15 + 20 + 15);
    }
    let info = softgfn_core::find_env("sets").unwrap();
    assert_eq!(info.name, "softgfn-sets/sets");
    assert_eq!(info.plugin.as_deref(), Some("softgfn-sets"));

    // Exact answers work through the ABI: log Z of the DP equals the closed form.
    let env = softgfn_core::build_env(
        "sets",
        &serde_json::json!({"n": 7, "max_size": 3, "seed": 4}),
    )
    .unwrap();
    let params = env.params();
    let w: Vec<f64> = serde_json::from_value(params["weights"].clone()).unwrap();
    assert_eq!(w.len(), 7);
    let mut terms = Vec::new();
    for mask in 1u32..(1 << 7) {
        if mask.count_ones() <= 3 {
            terms.push((0..7).filter(|i| mask >> i & 1 == 1).map(|i| w[i]).sum());
        }
    }
    let graph = StateGraph::build(env.as_ref(), 1 << 20).unwrap();
    assert!((graph.target().log_z - logsumexp(&terms)).abs() < 1e-12);
}

/// Every state of the grid, through `states_from_index` of `env`.
fn all_states(env: &dyn Environment) -> Vec<i32> {
    let en = env.as_enumerable().unwrap();
    let idx: Vec<u64> = (0..en.num_states()).collect();
    let mut out = vec![0; idx.len() * env.spec().state_width];
    en.states_from_index(&idx, &mut out).unwrap();
    out
}

#[test]
fn the_hypergrid_plugin_matches_the_static_one_call_for_call() {
    let plugin = host::load(&lib("softgfn-hypergrid")).unwrap();
    for (dim, side) in [(2, 5), (3, 4)] {
        let config = HypergridConfig {
            dim,
            side,
            ..Default::default()
        };
        let st = Hypergrid::new(config.clone()).unwrap();
        let pl: PluginEnv = plugin
            .create("hypergrid", &serde_json::json!({"dim": dim, "side": side}))
            .unwrap();
        assert_eq!(pl.qualified_name(), "softgfn-hypergrid/hypergrid");
        assert_eq!(pl.spec(), st.spec());
        assert_eq!(pl.params(), st.params());
        assert_eq!(pl.initial_row(), st.initial_row());
        let report = check_env(&pl).unwrap();
        assert!(report.exhaustive);
        assert_eq!(report.states_checked, side.pow(dim as u32));

        let states = all_states(&pl);
        assert_eq!(states, all_states(&st));
        let rows = states.len() / dim;
        let spec = st.spec().clone();
        let run = |env: &dyn Environment| {
            let mut fm = vec![false; rows * spec.num_actions];
            let mut bm = vec![false; rows * spec.num_backward_actions];
            env.forward_masks(&states, &mut fm).unwrap();
            env.backward_masks(&states, &mut bm).unwrap();
            let mut lr = vec![0.0; rows];
            env.log_reward(&states, &mut lr).unwrap();
            let mut feats = vec![0f32; rows * spec.feature_dim];
            env.encode(&states, &mut feats).unwrap();
            let mut idx = vec![0u64; rows];
            env.as_enumerable()
                .unwrap()
                .state_index(&states, &mut idx)
                .unwrap();
            // Step every row along its first valid non-exit action (rows at the far corner stay).
            let movable: Vec<usize> = (0..rows)
                .filter(|&r| (0..dim).any(|a| fm[r * spec.num_actions + a]))
                .collect();
            let from: Vec<i32> = movable
                .iter()
                .flat_map(|&r| states[r * dim..(r + 1) * dim].to_vec())
                .collect();
            let acts: Vec<u32> = movable
                .iter()
                .map(|&r| (0..dim).find(|&a| fm[r * spec.num_actions + a]).unwrap() as u32)
                .collect();
            let mut next = vec![0; from.len()];
            let mut back = vec![0u32; acts.len()];
            env.step(&from, &acts, &mut next, &mut back).unwrap();
            let mut prev = vec![0; from.len()];
            let mut fwd = vec![0u32; acts.len()];
            env.backward_step(&next, &back, &mut prev, &mut fwd)
                .unwrap();
            assert_eq!(prev, from);
            assert_eq!(fwd, acts);
            let lr_bits: Vec<u64> = lr.iter().map(|v| v.to_bits()).collect();
            let feat_bits: Vec<u32> = feats.iter().map(|v| v.to_bits()).collect();
            (fm, bm, lr_bits, feat_bits, idx, next, back)
        };
        assert!(run(&pl) == run(&st), "{dim} x {side}");
    }
}

#[test]
fn errors_of_the_environment_cross_the_abi() {
    let path = lib("softgfn-sets");
    host::load(&path).unwrap();
    // The plugin returned an error (from create, for bad parameters).
    let Err(e) = softgfn_core::build_env("softgfn-sets/sets", &serde_json::json!({"n": 0})) else {
        panic!("n = 0 must be refused");
    };
    assert_eq!(
        e.to_string(),
        "softgfn-sets/sets: plugin softgfn-sets 0.1.0 returned an error from create: sets: invalid parameter `n` = 0: expected an integer in 1..=62"
    );
    // ... and from step (the exit action is not a transition).
    let env = softgfn_core::build_env(
        "softgfn-sets/sets",
        &serde_json::json!({"n": 3, "max_size": 3}),
    )
    .unwrap();
    let e = env.step_one(&[1, 0, 0], 3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "softgfn-sets/sets: plugin softgfn-sets 0.1.0 returned an error from step: sets: action 3 is not valid in state [1, 0, 0]: the exit action ends the trajectory and has no next state"
    );
    // A buffer of the wrong length is the environment's own error, reported the same way.
    let mut out = [0.0; 2];
    let e = env.log_reward(&[1, 0, 0], &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "softgfn-sets/sets: plugin softgfn-sets 0.1.0 returned an error from log_reward: log-reward buffer of sets: expected a buffer of 1 values, found 2"
    );
    // An environment the plugin does not have.
    let plugin = host::load(&path).unwrap();
    let e = plugin.create("nope", &serde_json::Value::Null).unwrap_err();
    assert_eq!(
        e.to_string(),
        "softgfn-sets/nope: plugin softgfn-sets 0.1.0 rejected the call to create: plugin `softgfn-sets` has no environment `nope`; it has: sets"
    );
}

#[test]
fn a_panicking_plugin_is_an_error_not_a_crash() {
    let path = lib("softgfn-plugin-fixture-panics");
    host::load(&path).unwrap();
    let name = "softgfn-fixture-panics/boom";
    let env = softgfn_core::build_env(name, &serde_json::Value::Null).unwrap();
    let e = env.log_reward_of(&[1]).unwrap_err();
    assert_eq!(
        redacted(e, &path),
        "softgfn-fixture-panics/boom: plugin softgfn-fixture-panics 0.1.0 panicked in log_reward: boom: log_reward was told to panic (at crates/softgfn-plugin/fixtures/panics/src/lib.rs:130:13); this is a bug in the plugin, loaded from <PATH> (softgfn caught the panic)"
    );
    // The instance still works after the panic, and again panics the same way.
    assert_eq!(env.forward_mask_of(&[1]).unwrap(), vec![true, true]);
    assert!(
        env.log_reward_of(&[2])
            .unwrap_err()
            .to_string()
            .contains("panicked in log_reward")
    );
    // check_env reports it as a violated property.
    let e = check_env(env.as_ref()).unwrap_err().to_string();
    assert!(e.starts_with("check_env failed for boom: property `finite rewards` violated: log_reward([1]) failed: softgfn-fixture-panics/boom: plugin softgfn-fixture-panics 0.1.0 panicked in log_reward"), "{e}");

    let env = softgfn_core::build_env(name, &serde_json::json!({"panic_in": "step"})).unwrap();
    let e = env.step_one(&[0], 0).unwrap_err();
    assert_eq!(
        redacted(e, &path),
        "softgfn-fixture-panics/boom: plugin softgfn-fixture-panics 0.1.0 panicked in step: boom: step was told to panic (at crates/softgfn-plugin/fixtures/panics/src/lib.rs:99:13); this is a bug in the plugin, loaded from <PATH> (softgfn caught the panic)"
    );

    let Err(e) = softgfn_core::build_env(name, &serde_json::json!({"panic_in": "create"})) else {
        panic!("create must fail");
    };
    assert_eq!(
        redacted(e, &path),
        "softgfn-fixture-panics/boom: plugin softgfn-fixture-panics 0.1.0 panicked in create: boom: create was told to panic (at crates/softgfn-plugin/fixtures/panics/src/lib.rs:37:13); this is a bug in the plugin, loaded from <PATH> (softgfn caught the panic)"
    );

    // Without panics it is a valid environment.
    let env = softgfn_core::build_env(name, &serde_json::json!({"panic_in": "none"})).unwrap();
    check_env(env.as_ref()).unwrap();
}

#[test]
fn a_library_without_the_abi_is_not_a_plugin() {
    let path = lib("softgfn-plugin-fixture-not-a-plugin");
    assert_eq!(
        load_err(&path),
        "<PATH> is not a softgfn plugin: it does not export `softgfn_plugin_abi_version`. A plugin is a cdylib crate that registers its environments with softgfn_plugin::environments! and exports them under its `dynamic` feature: build it with `cargo build --release --features dynamic` and pass the resulting library"
    );
    assert!(matches!(
        host::load(&path),
        Err(PluginError::NotAPlugin { .. })
    ));
}

#[test]
fn another_abi_version_is_refused() {
    let path = lib("softgfn-plugin-fixture-wrong-abi");
    assert_eq!((OLDEST_ABI_VERSION, ABI_VERSION), (1, 2));
    assert_eq!(
        load_err(&path),
        "plugin <PATH> uses plugin ABI version 3, but this softgfn uses plugin ABI version 2 (and loads versions 1 to 2): rebuild the plugin against softgfn-plugin 0.1.0"
    );
}

#[test]
fn a_version_1_plugin_loads_with_the_default_capabilities() {
    let path = lib("softgfn-plugin-fixture-abi-v1");
    let plugin = host::load(&path).unwrap();
    assert_eq!(plugin.abi_version(), 1);
    let env = plugin.create("set-v1", &serde_json::json!({})).unwrap();
    // The environment has a readable form inside the plugin, but version 1 cannot carry it:
    // the host shows the integer row, and there is no state equivalence.
    assert!(env.as_readable().is_none());
    assert!(env.as_state_equivalence().is_none());
    let s = env.step_one(&env.initial_row(), 2).unwrap().0;
    assert_eq!(readable_state(&env, &s).unwrap(), "[0, 0, 1]");
    let report = check_env(&env).unwrap();
    assert!(report.exhaustive);
    assert_eq!(report.states_checked, 8);
}

#[test]
fn version_2_carries_the_readable_form_and_the_state_equivalence() {
    // The sets plugin: readable, no equivalence.
    let sets = host::load(&lib("softgfn-sets")).unwrap();
    assert_eq!(sets.abi_version(), ABI_VERSION);
    let env = sets.create("sets", &serde_json::json!({"n": 4})).unwrap();
    assert!(env.as_state_equivalence().is_none());
    let r = env.as_readable().unwrap();
    assert_eq!(r.readable(&[1, 0, 1, 1]).unwrap(), "{0, 2, 3}");
    assert_eq!(readable_state(&env, &[0, 0, 0, 0]).unwrap(), "{}");
    // An invalid row is the plugin's error, carried across.
    let e = r.readable(&[2, 0, 0, 0]).unwrap_err().to_string();
    assert!(e.contains("returned an error from readable"), "{e}");
    assert!(e.contains("values must be 0 or 1"), "{e}");
    let e = r.readable(&[1, 0]).unwrap_err().to_string();
    assert!(e.contains("returned an error from readable"), "{e}");

    // The hypergrid plugin agrees with the linked-in hypergrid on every state.
    let grid = host::load(&lib("softgfn-hypergrid")).unwrap();
    let params = serde_json::json!({"dim": 2, "side": 5});
    let env = grid.create("hypergrid", &params).unwrap();
    let local = Hypergrid::from_params(&params).unwrap();
    let states = all_states(&env);
    for s in states.chunks_exact(2) {
        assert_eq!(
            readable_state(&env, s).unwrap(),
            readable_state(&local, s).unwrap()
        );
    }

    // The molstr plugin: the molecule strings.
    let mol = host::load(&lib("softgfn-molstr")).unwrap();
    let env = mol.create("qm9str", &serde_json::json!({})).unwrap();
    let s0 = env.initial_row();
    assert_eq!(readable_state(&env, &s0).unwrap(), "");
    let s1 = env.step_one(&s0, 3).unwrap().0;
    let s2 = env.step_one(&s1, 3).unwrap().0;
    let text = readable_state(&env, &s2).unwrap();
    assert_eq!(text.len(), 2, "{text}");

    // The sehfrag plugin declares its equivalence, and check_env passes through the ABI.
    let frag = host::load(&lib("softgfn-sehfrag")).unwrap();
    let env = frag.create("sehfrag", &serde_json::json!({})).unwrap();
    let eq = env.as_state_equivalence().unwrap();
    let s0 = env.initial_row();
    let s1 = env.step_one(&s0, 1).unwrap().0;
    let s2 = env.step_one(&s1, 2).unwrap().0;
    assert_ne!(
        eq.canonical_key(&s1).unwrap(),
        eq.canonical_key(&s2).unwrap()
    );
    assert_eq!(
        eq.canonical_key(&s2).unwrap(),
        eq.canonical_key(&s2).unwrap()
    );
    assert!(eq.canonical_key(&s2[1..]).is_err());
    let text = readable_state(&env, &s2).unwrap();
    assert!(
        text.starts_with("blocks #0 ") && text.contains("junctions"),
        "{text}"
    );
    let report = softgfn_core::check_env_with(
        &env,
        &softgfn_core::CheckOptions {
            rollouts: 8,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.states_checked > 8, "{report}");
}

#[test]
fn a_malformed_manifest_is_refused() {
    let path = lib("softgfn-plugin-fixture-bad-manifest");
    assert_eq!(
        load_err(&path),
        "plugin <PATH> has a malformed manifest: it is not valid manifest JSON: missing field `softgfn_version` at line 1 column 60. The manifest is generated by softgfn_plugin::environments!: rebuild the plugin with that macro instead of writing `softgfn_plugin_manifest` by hand"
    );
}

#[test]
fn an_incompatible_softgfn_version_is_refused() {
    let path = lib("softgfn-plugin-fixture-old-softgfn");
    assert_eq!(
        load_err(&path),
        "plugin `softgfn-fixture-old-softgfn` (<PATH>) was built against softgfn 0.0.1, but this softgfn is 0.1.0; major.minor must match: rebuild the plugin against softgfn-plugin 0.1.0"
    );
}

#[test]
fn a_missing_file_is_a_load_error() {
    let e = host::load(Path::new("/nonexistent/libnothing.so")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot load plugin /nonexistent/libnothing.so: No such file or directory (os error 2)"
    );
}

#[test]
fn a_bare_name_provided_twice_is_the_duplicate_error() {
    let path = lib("softgfn-hypergrid");
    host::load(&path).unwrap();
    let Err(e) = softgfn_core::build_env("hypergrid", &serde_json::Value::Null) else {
        panic!("the bare name is ambiguous");
    };
    assert_eq!(
        redacted(e, &path),
        "environment name `hypergrid` is registered twice: by softgfn-hypergrid (built in) and by plugin softgfn-hypergrid 0.1.0 (<PATH>); ask for `softgfn-hypergrid/hypergrid` to use the plugin's, or do not load the plugin to use the built-in"
    );
    // The qualified name picks the plugin.
    let env = softgfn_core::build_env(
        "softgfn-hypergrid/hypergrid",
        &serde_json::json!({"dim": 2, "side": 3}),
    )
    .unwrap();
    assert_eq!(env.spec().num_actions, 3);
}
