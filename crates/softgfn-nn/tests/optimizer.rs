//! Adam against hand computations, parameter groups, optimizer state.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    AdamConfig, Device, HeadSpec, MlpSpec, Model, NnError, OptimizerSpec, Outputs, ScalarSpec,
};

fn spec() -> MlpSpec {
    MlpSpec {
        input_dim: 1,
        hidden_dims: vec![],
        heads: vec![HeadSpec::new("y", 1)],
        scalars: vec![ScalarSpec::new("s", 0.5)],
    }
}

fn build(optimizer: &OptimizerSpec) -> Result<Model, NnError> {
    Model::mlp(
        &spec(),
        optimizer,
        Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(1),
    )
}

/// One training iteration in which only the scalar receives a gradient.
fn scalar_step(m: &mut Model, g: f32) -> f32 {
    let mut out = Outputs::new();
    m.forward_train(&[0.0], 1, &mut out, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    let mut zero = Outputs::new();
    zero.reset(1, &[1]);
    m.backward(&zero, &[g]).unwrap();
    m.step().unwrap()
}

#[test]
fn adam_with_weight_decay_and_group_learning_rate_matches_hand_computation() {
    let optimizer = OptimizerSpec {
        adam: AdamConfig {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        group_learning_rates: vec![("scalar:s".into(), 0.1)],
    };
    let mut m = build(&optimizer).unwrap();
    // By hand (lr 0.1 from the group override, theta_0 = 0.5):
    // t=1: g = 1 + 0.1*0.5 = 1.05, m = 0.105, v = 0.0011025,
    //      theta = 0.5 - 0.1 * 1.05 / (sqrt(1.1025) + 1e-8) = 0.40000000095238
    // t=2: g = -2 + 0.1*theta_1 = -1.96, m = -0.1015, v = 0.0049429975,
    //      theta = theta_1 - 0.1 * (m/0.19) / (sqrt(v/0.001999) + 1e-8) = 0.43397219844768
    // t=3: g = 0.5 + 0.1*theta_2, m = -0.03701027800695, v = 0.00523333504066,
    //      theta = 0.44430712102317
    let expected = [
        (0.400_000_000_952_380_9, 0.105, 0.001_102_5),
        (
            0.433_972_198_447_679_9,
            -0.101_499_999_990_476_17,
            0.004_942_997_499_626_671,
        ),
        (
            0.444_307_121_023_165_55,
            -0.037_010_278_006_951_766,
            0.005_233_335_040_662_068,
        ),
    ];
    let grads = [1.0, -2.0, 0.5];
    for (t, (&g, &(theta, m1, v1))) in grads.iter().zip(&expected).enumerate() {
        let norm = scalar_step(&mut m, g);
        // The norm is taken before weight decay; the head got zero gradient.
        assert!(
            (f64::from(norm) - f64::from(g).abs()).abs() < 1e-6,
            "norm {norm}"
        );
        let got = f64::from(m.scalar(0));
        assert!(
            (got - theta).abs() < 2e-6,
            "step {}: theta {got} vs {theta}",
            t + 1
        );
        let state = m.optimizer_state();
        let find = |n: &str| state.tensors.iter().find(|x| x.name == n).unwrap().data[0];
        let (gm, gv) = (
            f64::from(find("adam.m.scalar.s")),
            f64::from(find("adam.v.scalar.s")),
        );
        assert!((gm - m1).abs() < 1e-6, "step {}: m {gm} vs {m1}", t + 1);
        assert!(
            (gv - v1).abs() < 1e-8 + 1e-5 * v1,
            "step {}: v {gv} vs {v1}",
            t + 1
        );
        let steps: Vec<(String, u64)> = vec![
            ("torso".into(), t as u64 + 1),
            ("head:y".into(), t as u64 + 1),
            ("scalar:s".into(), t as u64 + 1),
        ];
        assert_eq!(state.steps, steps);
    }
}

#[test]
fn default_learning_rate_applies_without_override() {
    // Without the override the first step moves by lr = 1e-3 (Adam's first step is lr * sign).
    let mut m = build(&OptimizerSpec::default()).unwrap();
    scalar_step(&mut m, 3.0);
    assert!((f64::from(m.scalar(0)) - (0.5 - 1e-3)).abs() < 1e-7);
}

#[test]
fn unknown_group_is_an_error_listing_the_valid_groups() {
    let optimizer = OptimizerSpec {
        group_learning_rates: vec![("scalar:log_z".into(), 0.1)],
        ..OptimizerSpec::default()
    };
    let err = build(&optimizer).unwrap_err();
    assert!(matches!(err, NnError::UnknownGroup { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("scalar:log_z"), "{msg}");
    assert!(msg.contains("torso, head:y, scalar:s"), "{msg}");
}

#[test]
fn invalid_adam_settings_are_rejected() {
    let mut optimizer = OptimizerSpec::default();
    optimizer.adam.beta1 = 1.0;
    let msg = build(&optimizer).unwrap_err().to_string();
    assert!(msg.contains("beta1"), "{msg}");
}

#[test]
fn step_without_gradients_changes_nothing() {
    let mut m = build(&OptimizerSpec::default()).unwrap();
    let before = m.parameters();
    assert_eq!(m.step().unwrap(), 0.0);
    assert_eq!(m.parameters(), before);
    assert!(m.optimizer_state().steps.iter().all(|(_, s)| *s == 0));
}

#[test]
fn optimizer_state_round_trips_and_validates() {
    let mut a = build(&OptimizerSpec::default()).unwrap();
    scalar_step(&mut a, 1.0);
    scalar_step(&mut a, -0.5);
    let mut b = build(&OptimizerSpec::default()).unwrap();
    b.set_parameters(&a.parameters()).unwrap();
    b.set_optimizer_state(&a.optimizer_state()).unwrap();
    assert_eq!(b.optimizer_state(), a.optimizer_state());
    // Same state => same next step.
    scalar_step(&mut a, 0.25);
    scalar_step(&mut b, 0.25);
    assert_eq!(a.parameters(), b.parameters());

    let mut bad = a.optimizer_state();
    bad.tensors.retain(|t| t.name != "adam.v.head.y.bias");
    let err = b.set_optimizer_state(&bad).unwrap_err().to_string();
    assert!(err.contains("adam.v.head.y.bias"), "{err}");
    let mut bad = a.optimizer_state();
    bad.steps.pop();
    assert!(b.set_optimizer_state(&bad).is_err());
}
