//! Per-step cost of the hypergrid loaded as a plugin (through the C ABI) against the statically
//! linked one: `forward_masks + step + encode` on batches of 1, 16 and 256 states.
//!
//! Needs the plugin libraries: `scripts/build-plugins.sh` (they land in target/plugins/release).

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use softgfn_core::{Environment, EnvironmentExt};
use softgfn_hypergrid::{Hypergrid, HypergridConfig};

fn plugin_path(crate_name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins/release");
    let p = dir.join(softgfn_plugin::host::library_file_name(crate_name));
    assert!(
        p.exists(),
        "{} is missing: build the plugin libraries first with scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// A batch of `rows` states of the 4 x 20 grid with one valid non-exit action each.
fn batch(env: &dyn Environment, rows: usize) -> (Vec<i32>, Vec<u32>) {
    let d = env.spec().state_width;
    let mut states = Vec::with_capacity(rows * d);
    let mut actions = Vec::with_capacity(rows);
    for r in 0..rows {
        let s: Vec<i32> = (0..d).map(|k| ((r * 7 + k * 3) % 19) as i32).collect();
        let m = env.forward_mask_of(&s).unwrap();
        let a = (0..d).find(|&a| m[a]).unwrap() as u32;
        states.extend_from_slice(&s);
        actions.push(a);
    }
    (states, actions)
}

fn bench(c: &mut Criterion) {
    let config = HypergridConfig {
        dim: 4,
        side: 20,
        ..Default::default()
    };
    let static_env: Box<dyn Environment> = Box::new(Hypergrid::new(config.clone()).unwrap());
    let plugin = softgfn_plugin::host::load(&plugin_path("softgfn-hypergrid")).unwrap();
    let plugin_env: Box<dyn Environment> = Box::new(
        Arc::clone(&plugin)
            .create("hypergrid", &serde_json::to_value(&config).unwrap())
            .unwrap(),
    );
    let mut group = c.benchmark_group("hypergrid_forward_masks_step_encode");
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(2));
    for rows in [1usize, 16, 256] {
        for (kind, env) in [("static", &static_env), ("plugin", &plugin_env)] {
            let spec = env.spec().clone();
            let (states, actions) = batch(env.as_ref(), rows);
            let mut masks = vec![false; rows * spec.num_actions];
            let mut next = vec![0; rows * spec.state_width];
            let mut back = vec![0u32; rows];
            let mut feats = vec![0f32; rows * spec.feature_dim];
            group.bench_with_input(BenchmarkId::new(kind, rows), &rows, |b, _| {
                b.iter(|| {
                    env.forward_masks(black_box(&states), &mut masks).unwrap();
                    env.step(black_box(&states), &actions, &mut next, &mut back)
                        .unwrap();
                    env.encode(black_box(&next), &mut feats).unwrap();
                    black_box((&masks, &feats));
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
