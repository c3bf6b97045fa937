//! Rough timings (ignored by default). Run single-threaded with
//! `RAYON_NUM_THREADS=1 cargo test --release -p softgfn-nn --test timing -- --ignored --nocapture`.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{Device, HeadSpec, MlpSpec, Model, OptimizerSpec, Outputs, ScalarSpec};

fn model(input_dim: usize) -> Model {
    let spec = MlpSpec {
        input_dim,
        hidden_dims: vec![256, 256],
        heads: vec![
            HeadSpec::new("pf", 5),
            HeadSpec::new("pb", 4),
            HeadSpec::new("logf", 1),
        ],
        scalars: vec![ScalarSpec::new("log_z", 0.0)],
    };
    Model::mlp(
        &spec,
        &OptimizerSpec::default(),
        Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap()
}

/// Median of `reps` timings of `f`, in milliseconds.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..reps.min(20) {
        f();
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

#[test]
#[ignore = "timing; run explicitly with --ignored --nocapture"]
fn timings_2x256_mlp() {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    for input_dim in [16, 64] {
        let mut m = model(input_dim);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Outputs::new();
        let small: Vec<f32> = (0..16 * input_dim)
            .map(|_| rng.gen_range(0.0..1.0))
            .collect();
        let fwd16 = median_ms(2000, || m.forward(&small, 16, &mut out).unwrap());

        let rows = 640;
        let big: Vec<f32> = (0..rows * input_dim)
            .map(|_| rng.gen_range(0.0..1.0))
            .collect();
        let fwd640 = median_ms(200, || m.forward(&big, rows, &mut out).unwrap());
        let mut grads = Outputs::new();
        grads.reset(rows, &m.head_dims());
        for h in 0..grads.num_heads() {
            for g in grads.head_mut(h) {
                *g = rng.gen_range(-1e-3..1e-3);
            }
        }
        let mut r = ChaCha8Rng::seed_from_u64(2);
        let train = median_ms(200, || {
            m.forward_train(&big, rows, &mut out, &mut r).unwrap();
            m.backward(&grads, &[0.1]).unwrap();
            m.step().unwrap();
        });
        println!(
            "input {input_dim}, threads {threads}: forward b16 {fwd16:.4} ms, forward b640 \
             {fwd640:.3} ms, forward_train+backward+step b640 {train:.3} ms"
        );
    }
}
