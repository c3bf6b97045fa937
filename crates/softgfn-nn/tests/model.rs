//! Construction, copies, Polyak averaging, errors and devices.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, HeadSpec, MlpSpec, Model, NamedTensor, NnError, OptimizerSpec, Outputs, ScalarSpec,
};

fn spec() -> MlpSpec {
    MlpSpec {
        input_dim: 4,
        hidden_dims: vec![8, 6],
        heads: vec![HeadSpec::new("pf", 3), HeadSpec::new("logf", 1)],
        scalars: vec![ScalarSpec::new("log_z", 0.25)],
    }
}

fn model(seed: u64) -> Model {
    Model::mlp(
        &spec(),
        &OptimizerSpec::default(),
        Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(seed),
    )
    .unwrap()
}

fn bits(params: &[NamedTensor]) -> Vec<Vec<u32>> {
    params
        .iter()
        .map(|t| t.data.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
}

#[test]
fn same_seed_same_parameters_different_seed_different() {
    let a = model(42);
    let b = model(42);
    let c = model(43);
    assert_eq!(bits(&a.parameters()), bits(&b.parameters()));
    assert_ne!(bits(&a.parameters()), bits(&c.parameters()));
}

#[test]
fn layout_init_and_counts() {
    let m = model(1);
    let p = m.parameters();
    let shapes: Vec<(&str, Vec<usize>)> = p
        .iter()
        .map(|t| (t.name.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(
        shapes,
        vec![
            ("torso.0.weight", vec![4, 8]),
            ("torso.0.bias", vec![8]),
            ("torso.1.weight", vec![8, 6]),
            ("torso.1.bias", vec![6]),
            ("head.pf.weight", vec![6, 3]),
            ("head.pf.bias", vec![3]),
            ("head.logf.weight", vec![6, 1]),
            ("head.logf.bias", vec![1]),
            ("scalar.log_z", vec![1]),
        ]
    );
    assert_eq!(m.num_parameters(), 32 + 8 + 48 + 6 + 18 + 3 + 6 + 1 + 1);
    assert_eq!(m.head_dims(), vec![3, 1]);
    assert_eq!(m.num_scalars(), 1);
    assert_eq!(m.scalar(0), 0.25);
    assert_eq!(m.device(), Device::Cpu);
    assert_eq!(m.spec(), &softgfn_nn::NetSpec::Mlp(spec()));
    // PyTorch default init: |w| <= 1/sqrt(fan_in), and not degenerate.
    for (t, fan_in) in p.iter().zip([4, 4, 8, 8, 6, 6, 6, 6]) {
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(t.data.iter().all(|x| x.abs() <= bound), "{}", t.name);
        assert!(t.data.iter().any(|x| x.abs() > bound / 10.0), "{}", t.name);
    }
}

#[test]
fn invalid_specs_are_rejected() {
    let bad = |f: &dyn Fn(&mut MlpSpec)| {
        let mut s = spec();
        f(&mut s);
        let r = Model::mlp(
            &s,
            &OptimizerSpec::default(),
            Device::Cpu,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        match r {
            Err(NnError::InvalidSpec(msg)) => msg,
            other => panic!("expected InvalidSpec, found {other:?}"),
        }
    };
    assert!(bad(&|s| s.input_dim = 0).contains("input_dim"));
    assert!(bad(&|s| s.hidden_dims[1] = 0).contains("hidden_dims[1]"));
    assert!(bad(&|s| s.heads.clear()).contains("at least one head"));
    assert!(bad(&|s| s.heads[1].dim = 0).contains("logf"));
    assert!(bad(&|s| s.heads[1].name = "pf".into()).contains("twice"));
}

#[test]
fn heads_read_the_input_directly_without_hidden_layers() {
    let s = MlpSpec {
        input_dim: 2,
        hidden_dims: vec![],
        heads: vec![HeadSpec::new("y", 1)],
        scalars: vec![],
    };
    let mut m = Model::mlp(
        &s,
        &OptimizerSpec::default(),
        Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    m.set_parameters(&[
        NamedTensor {
            name: "head.y.weight".into(),
            shape: vec![2, 1],
            data: vec![2.0, -3.0],
        },
        NamedTensor {
            name: "head.y.bias".into(),
            shape: vec![1],
            data: vec![0.5],
        },
    ])
    .unwrap();
    let mut out = Outputs::new();
    m.forward(&[1.0, 1.0, -2.0, 0.5], 2, &mut out).unwrap();
    assert_eq!(out.head(0), &[-0.5, -5.0]);
}

fn tiny(seed: u64, w: [f32; 2], b: f32, s: f32) -> Model {
    let spec = MlpSpec {
        input_dim: 2,
        hidden_dims: vec![],
        heads: vec![HeadSpec::new("y", 1)],
        scalars: vec![ScalarSpec::new("s", 0.0)],
    };
    let mut m = Model::mlp(
        &spec,
        &OptimizerSpec::default(),
        Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(seed),
    )
    .unwrap();
    m.set_parameters(&[
        NamedTensor {
            name: "head.y.weight".into(),
            shape: vec![2, 1],
            data: w.to_vec(),
        },
        NamedTensor {
            name: "head.y.bias".into(),
            shape: vec![1],
            data: vec![b],
        },
        NamedTensor {
            name: "scalar.s".into(),
            shape: vec![1],
            data: vec![s],
        },
    ])
    .unwrap();
    m
}

#[test]
fn polyak_and_copy_give_hand_computed_values() {
    let mut target = tiny(1, [1.0, 2.0], 0.5, -1.0);
    let online = tiny(2, [3.0, -2.0], 1.5, 1.0);
    target.polyak_from(&online, 0.25).unwrap();
    // 0.75 * target + 0.25 * online
    let p = target.parameters();
    assert_eq!(p[0].data, vec![1.5, 1.0]);
    assert_eq!(p[1].data, vec![0.75]);
    assert_eq!(p[2].data, vec![-0.5]);
    assert_eq!(target.scalar(0), -0.5);
    // Output follows the new parameters.
    let mut out = Outputs::new();
    target.forward(&[1.0, 1.0], 1, &mut out).unwrap();
    assert_eq!(out.head(0), &[3.25]);

    target.copy_from(&online).unwrap();
    assert_eq!(target.parameters(), online.parameters());
    assert_eq!(target.scalar(0), 1.0);

    assert!(target.polyak_from(&online, 1.5).is_err());
}

#[test]
fn copies_are_independent() {
    let mut online = model(3);
    let target = online.clone_model();
    assert_eq!(bits(&target.parameters()), bits(&online.parameters()));
    assert!(target.optimizer_state().steps.iter().all(|(_, s)| *s == 0));

    // Train the online network one step; the target must not move.
    let mut out = Outputs::new();
    let input = [0.1, -0.2, 0.3, 0.4];
    online
        .forward_train(&input, 1, &mut out, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    let mut g = Outputs::new();
    g.reset(1, &online.head_dims());
    g.head_mut(0).fill(1.0);
    g.head_mut(1).fill(-1.0);
    online.backward(&g, &[1.0]).unwrap();
    online.step().unwrap();
    assert_ne!(bits(&target.parameters()), bits(&online.parameters()));
    assert_eq!(bits(&target.parameters()), bits(&model(3).parameters()));

    let mut copy = model(4);
    copy.copy_from(&online).unwrap();
    online.polyak_from(&model(5), 0.5).unwrap();
    assert_ne!(copy.parameters(), online.parameters());
}

#[test]
fn copy_between_different_architectures_fails() {
    let mut a = model(1);
    let b = tiny(1, [0.0, 0.0], 0.0, 0.0);
    let err = a.copy_from(&b).unwrap_err();
    assert!(matches!(err, NnError::Incompatible(_)), "{err:?}");
    assert!(a.polyak_from(&b, 0.1).is_err());
}

#[test]
fn set_parameters_names_the_offending_tensor() {
    let mut m = model(1);
    let mut p = m.parameters();
    p.retain(|t| t.name != "torso.1.bias");
    let msg = m.set_parameters(&p).unwrap_err().to_string();
    assert!(
        msg.contains("torso.1.bias") && msg.contains("missing"),
        "{msg}"
    );

    let mut p = m.parameters();
    p[4].shape = vec![3, 6];
    let msg = m.set_parameters(&p).unwrap_err().to_string();
    assert!(
        msg.contains("head.pf.weight") && msg.contains("[6, 3]"),
        "{msg}"
    );

    let mut p = m.parameters();
    p.push(NamedTensor {
        name: "head.extra.bias".into(),
        shape: vec![1],
        data: vec![0.0],
    });
    let msg = m.set_parameters(&p).unwrap_err().to_string();
    assert!(msg.contains("head.extra.bias"), "{msg}");
    // Nothing changed on error.
    assert_eq!(m.parameters(), model(1).parameters());
}

#[test]
fn wrong_input_length_is_a_shape_error() {
    let mut m = model(1);
    let mut out = Outputs::new();
    let err = m.forward(&[0.0; 7], 2, &mut out).unwrap_err();
    assert!(matches!(err, NnError::Shape { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("8 values") && msg.contains("found 7"), "{msg}");
    let err = m
        .forward_train(&[0.0; 9], 2, &mut out, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_err();
    assert!(matches!(err, NnError::Shape { .. }), "{err:?}");
}

#[test]
fn backward_needs_a_pending_forward_and_matching_shapes() {
    let mut m = model(1);
    let mut g = Outputs::new();
    g.reset(2, &[3, 1]);
    let err = m.backward(&g, &[0.0]).unwrap_err();
    assert!(matches!(err, NnError::NoPendingForward), "{err:?}");
    assert!(err.to_string().contains("forward_train"));

    let mut out = Outputs::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    m.forward_train(&[0.5; 8], 2, &mut out, &mut rng).unwrap();
    // Wrong dims and wrong scalar count are shape errors that keep the pending forward.
    let mut wrong = Outputs::new();
    wrong.reset(2, &[3, 2]);
    assert!(matches!(
        m.backward(&wrong, &[0.0]),
        Err(NnError::Shape { .. })
    ));
    assert!(matches!(m.backward(&g, &[]), Err(NnError::Shape { .. })));
    m.backward(&g, &[0.0]).unwrap();
    // The forward is consumed by backward.
    assert!(matches!(
        m.backward(&g, &[0.0]),
        Err(NnError::NoPendingForward)
    ));
    // A parameter update discards a pending forward.
    m.forward_train(&[0.5; 8], 2, &mut out, &mut rng).unwrap();
    m.polyak_from(&model(2), 0.5).unwrap();
    assert!(matches!(
        m.backward(&g, &[0.0]),
        Err(NnError::NoPendingForward)
    ));
}

#[test]
fn outputs_reuse_buffers() {
    let m = model(1);
    let mut out = Outputs::new();
    m.forward(&[0.5; 40], 10, &mut out).unwrap();
    let ptr = out.head(0).as_ptr();
    m.forward(&[0.5; 12], 3, &mut out).unwrap();
    assert_eq!(out.rows(), 3);
    assert_eq!(out.head(0).len(), 9);
    assert_eq!(out.head(0).as_ptr(), ptr);
    m.forward(&[0.5; 40], 10, &mut out).unwrap();
    assert_eq!(out.head(0).as_ptr(), ptr);
    // Zero rows is fine.
    m.forward(&[], 0, &mut out).unwrap();
    assert_eq!(out.rows(), 0);
    assert!(out.head(1).is_empty());
    out.reset(2, &[1, 2]);
    assert_eq!(out.num_heads(), 2);
    assert_eq!(out.head(1), &[0.0; 4]);
}

#[test]
fn device_parsing() {
    assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
    assert_eq!(Device::parse(" CPU ").unwrap(), Device::Cpu);
    assert_eq!(Device::default(), Device::Cpu);
    assert_eq!(Device::Cpu.to_string(), "cpu");
    assert_eq!(Device::Cuda(0).to_string(), "cuda:0");
    // Without the `cuda` feature every CUDA device is refused with the rebuild command.
    #[cfg(not(feature = "cuda"))]
    for s in ["cuda", "cuda:1"] {
        let err = Device::parse(s).unwrap_err();
        assert!(matches!(err, NnError::DeviceUnavailable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("not compiled") && msg.contains("--features cuda"),
            "{msg}"
        );
    }
    let msg = Device::parse("gpu").unwrap_err().to_string();
    assert!(
        msg.contains("gpu") && msg.contains("`cpu`") && msg.contains("cuda:<index>"),
        "{msg}"
    );
    assert!(Device::parse("cuda:").is_err());
    assert!(Device::parse("cuda:x").is_err());
    #[cfg(not(feature = "cuda"))]
    {
        let err = Model::mlp(
            &spec(),
            &OptimizerSpec::default(),
            Device::Cuda(0),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap_err();
        assert!(matches!(err, NnError::DeviceUnavailable { .. }), "{err:?}");
    }
    // Text form round-trips (serde uses it too).
    assert_eq!(
        Device::try_from("cuda:2".to_string()).unwrap(),
        Device::Cuda(2)
    );
    assert_eq!(String::from(Device::Cuda(2)), "cuda:2");
}
