//! End-to-end: a tiny regression trained with host-computed MSE gradients.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{AdamConfig, Device, HeadSpec, MlpSpec, Model, OptimizerSpec, Outputs};

#[test]
fn fits_y_equals_two_x() {
    let spec = MlpSpec {
        input_dim: 1,
        hidden_dims: vec![16],
        heads: vec![HeadSpec::new("y", 1)],
        scalars: vec![],
    };
    let optimizer = OptimizerSpec {
        adam: AdamConfig {
            learning_rate: 1e-2,
            ..AdamConfig::default()
        },
        group_learning_rates: vec![],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut model = Model::mlp(&spec, &optimizer, Device::Cpu, &mut rng).unwrap();
    let rows = 32;
    let mut x = vec![0.0f32; rows];
    let mut out = Outputs::new();
    let mut grad = Outputs::new();
    let mut first = None;
    let mut loss = f64::NAN;
    for _ in 0..300 {
        for v in &mut x {
            *v = rng.gen_range(-1.0..1.0);
        }
        model.forward_train(&x, rows, &mut out, &mut rng).unwrap();
        grad.reset(rows, &[1]);
        loss = 0.0;
        for ((g, y), xi) in grad.head_mut(0).iter_mut().zip(out.head(0)).zip(&x) {
            let err = f64::from(*y) - 2.0 * f64::from(*xi);
            loss += err * err / rows as f64;
            *g = (2.0 * err / rows as f64) as f32;
        }
        first.get_or_insert(loss);
        model.backward(&grad, &[]).unwrap();
        let norm = model.step().unwrap();
        assert!(norm.is_finite());
    }
    let first = first.unwrap();
    assert!(loss < 5e-3, "final mse {loss} (initial {first})");
    assert!(loss < first / 50.0, "final mse {loss} (initial {first})");
}
