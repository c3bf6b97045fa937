//! CPU-vs-device agreement: the same network, built from the same seed on the CPU and on the
//! device named by `SOFTGFN_TEST_DEVICE`, must give the same outputs, gradients and Adam step.
//!
//! - `SOFTGFN_TEST_DEVICE` unset (or `cpu`): the comparison runs CPU against CPU and must match
//!   bitwise, which exercises the whole comparison path on every machine.
//! - `SOFTGFN_TEST_DEVICE=cuda` (or `cuda:<index>`), in a build with `--features cuda` on a
//!   machine with a GPU: CPU against CUDA, within [`CUDA_TOLERANCE`]. Setting it in a build
//!   without the feature is an error, not a silent CPU-only run. `scripts/cuda-check.sh run`
//!   sets it.
//!
//! The same file checks the errors for CUDA devices that this build or machine cannot use.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    AdamConfig, Device, HeadSpec, MlpSpec, Model, NamedTensor, NetSpec, NnError, OptimizerSpec,
    Outputs, ScalarSpec, TokenReadout, TransformerSpec,
};

/// How far two devices may disagree: `|a - b| <= abs + rel * max(|a|, |b|)`.
#[derive(Clone, Copy, Debug)]
struct Tolerance {
    rel: f32,
    abs: f32,
}

/// CPU against CPU: the same code on the same device is deterministic, so bitwise equal.
const EXACT: Tolerance = Tolerance { rel: 0.0, abs: 0.0 };

/// CPU against CUDA. Both compute in `f32` (cuBLAS's default math mode, no TF32), but sum in
/// different orders (the `gemm` crate's blocking against cuBLAS's, host-side against on-device
/// reductions), and CUDA's `expf`/`sqrtf` may differ from the host's by an ulp or two. A sum of
/// `k` terms reordered changes by about `sqrt(k) * 6e-8` relative to the terms' magnitude; the
/// widest sum here has 32 terms (~3.4e-7), and the transformer chains a few such layers, so
/// `1e-4` relative leaves a margin of ~100. Values that are sums with cancellation (biases'
/// gradients, near-zero outputs) are small in absolute terms, which `1e-5` absolute covers.
/// The Adam step is made Lipschitz in the gradient (see [`optimizer`]) so that these
/// differences are not amplified by it.
#[cfg(feature = "cuda")]
const CUDA_TOLERANCE: Tolerance = Tolerance {
    rel: 1e-4,
    abs: 1e-5,
};

/// The command that turns CUDA support on; CPU-only builds must name it in their error.
#[cfg(not(feature = "cuda"))]
const REBUILD: &str = "cargo build --release -p softgfn-cli --features cuda";

/// The device to compare with the CPU, and the tolerance for it.
fn device_under_test() -> (Device, Tolerance) {
    let Ok(name) = std::env::var("SOFTGFN_TEST_DEVICE") else {
        return (Device::Cpu, EXACT);
    };
    let device = Device::try_from(name.clone())
        .unwrap_or_else(|e| panic!("SOFTGFN_TEST_DEVICE={name:?} is not a device: {e}"));
    match device {
        Device::Cpu => (Device::Cpu, EXACT),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => {
            if let Err(e) = Device::parse(&name) {
                panic!("SOFTGFN_TEST_DEVICE={name}, but the device cannot be used: {e}");
            }
            (device, CUDA_TOLERANCE)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => panic!(
            "SOFTGFN_TEST_DEVICE={name} needs the `cuda` feature: run the tests with \
             `--features cuda` (or scripts/cuda-check.sh)"
        ),
    }
}

/// Adam with an `eps` large enough that the first step, `lr * g / (|g| + eps)`, is Lipschitz in
/// `g` (constant at most `lr / eps = 0.1`). With PyTorch's `eps = 1e-8` it is `lr * sign(g)`, so a
/// gradient of `1e-9` on one device and `-1e-9` on the other would differ by `2 * lr`.
fn optimizer() -> OptimizerSpec {
    OptimizerSpec {
        adam: AdamConfig {
            learning_rate: 1e-2,
            eps: 0.1,
            ..AdamConfig::default()
        },
        group_learning_rates: vec![("scalar:log_z".into(), 0.05)],
    }
}

fn mlp_spec() -> NetSpec {
    NetSpec::Mlp(MlpSpec {
        input_dim: 12,
        hidden_dims: vec![32, 32],
        heads: vec![HeadSpec::new("pf", 5), HeadSpec::new("log_flow", 1)],
        scalars: vec![ScalarSpec::new("log_z", 0.25)],
    })
}

const TOKENS: usize = 4;
const FEATURES: usize = 3;
const WORDS: usize = 2;

fn transformer_spec() -> NetSpec {
    NetSpec::Transformer(TransformerSpec {
        tokens: TOKENS,
        token_features: FEATURES,
        d_model: 16,
        layers: 2,
        attention_heads: 2,
        feedforward: 32,
        // Dropout masks are drawn on the host from the caller's RNG, so both devices get the
        // same masks; a non-zero rate exercises that path.
        dropout: 0.1,
        forward_readout: TokenReadout::TokenWord { words: WORDS },
        backward_readout: TokenReadout::Token,
        heads: vec![
            HeadSpec::forward_actions("forward", TOKENS * WORDS),
            HeadSpec::backward_actions("backward", TOKENS),
            HeadSpec::new("log_flow", 1),
        ],
        scalars: vec![ScalarSpec::new("log_z", 0.25)],
    })
}

/// A batch for `spec`: one-hot tokens for the transformer, uniform features for the MLP.
fn input(spec: &NetSpec, rows: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    match spec {
        NetSpec::Transformer(t) => {
            let mut x = vec![0.0f32; rows * t.input_dim()];
            for r in 0..rows {
                for k in 0..t.tokens {
                    x[(r * t.tokens + k) * t.token_features + rng.gen_range(0..t.token_features)] =
                        1.0;
                }
            }
            x
        }
        _ => (0..rows * spec.input_dim())
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect(),
    }
}

/// Asserts `|a - b| <= tol.abs + tol.rel * max(|a|, |b|)` elementwise, naming the worst element.
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: Tolerance) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && y.is_finite(), "{what}[{i}]: {x} vs {y}");
        let excess = (x - y).abs() - (tol.abs + tol.rel * x.abs().max(y.abs()));
        if excess > 0.0 && worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}[{i}]: cpu {} vs device {} (difference {:e}, tolerance {tol:?})",
            a[i],
            b[i],
            (a[i] - b[i]).abs()
        );
    }
}

fn assert_tensors_close(what: &str, a: &[NamedTensor], b: &[NamedTensor], tol: Tolerance) {
    assert_eq!(a.len(), b.len(), "{what}: tensor counts differ");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (&x.name, &x.shape),
            (&y.name, &y.shape),
            "{what}: layouts differ"
        );
        assert_close(&format!("{what} `{}`", x.name), &x.data, &y.data, tol);
    }
}

fn assert_outputs_close(what: &str, a: &Outputs, b: &Outputs, tol: Tolerance) {
    assert_eq!(a.rows(), b.rows(), "{what}: rows differ");
    assert_eq!(a.num_heads(), b.num_heads(), "{what}: head counts differ");
    for h in 0..a.num_heads() {
        assert_close(&format!("{what} head {h}"), a.head(h), b.head(h), tol);
    }
}

/// Builds `spec` on the CPU and on `device` from one seed, runs forward_train, backward (of a
/// fixed random linear functional of the outputs) and one Adam step on both, and compares.
fn compare(spec: &NetSpec, device: Device, tol: Tolerance) {
    let build = |d: Device| {
        Model::new(spec, &optimizer(), d, &mut ChaCha8Rng::seed_from_u64(11))
            .unwrap_or_else(|e| panic!("building on {d}: {e}"))
    };
    let mut cpu = build(Device::Cpu);
    let mut dev = build(device);
    assert_eq!(dev.device(), device);
    // Initialization happens on the host, so the uploaded parameters are bitwise the same.
    assert_tensors_close(
        "initial parameters",
        &cpu.parameters(),
        &dev.parameters(),
        EXACT,
    );

    let rows = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x = input(spec, rows, &mut rng);
    let mut head_grads = Outputs::new();
    head_grads.reset(rows, &cpu.head_dims());
    for h in 0..head_grads.num_heads() {
        for g in head_grads.head_mut(h) {
            *g = rng.gen_range(-1.0f32..1.0);
        }
    }
    let scalar_grads = vec![0.3f32; cpu.num_scalars()];

    let (mut out_cpu, mut out_dev) = (Outputs::new(), Outputs::new());
    // Same RNG seed on both sides: the transformer's dropout masks are drawn from it.
    cpu.forward_train(&x, rows, &mut out_cpu, &mut ChaCha8Rng::seed_from_u64(13))
        .unwrap();
    dev.forward_train(&x, rows, &mut out_dev, &mut ChaCha8Rng::seed_from_u64(13))
        .unwrap();
    assert_outputs_close("forward_train outputs", &out_cpu, &out_dev, tol);

    cpu.backward(&head_grads, &scalar_grads).unwrap();
    dev.backward(&head_grads, &scalar_grads).unwrap();
    let grads_cpu = cpu.gradients();
    assert!(
        grads_cpu.iter().any(|t| t.data.iter().any(|&g| g != 0.0)),
        "the gradients are all zero: the comparison would prove nothing"
    );
    assert_tensors_close("gradients", &grads_cpu, &dev.gradients(), tol);

    let norm_cpu = cpu.step().unwrap();
    let norm_dev = dev.step().unwrap();
    assert_close("gradient norm", &[norm_cpu], &[norm_dev], tol);
    assert_tensors_close(
        "stepped parameters",
        &cpu.parameters(),
        &dev.parameters(),
        tol,
    );
    let (state_cpu, state_dev) = (cpu.optimizer_state(), dev.optimizer_state());
    assert_eq!(state_cpu.steps, state_dev.steps);
    assert_tensors_close("adam moments", &state_cpu.tensors, &state_dev.tensors, tol);

    // Inference forward with the stepped parameters.
    cpu.forward(&x, rows, &mut out_cpu).unwrap();
    dev.forward(&x, rows, &mut out_dev).unwrap();
    assert_outputs_close("forward outputs after the step", &out_cpu, &out_dev, tol);
}

#[test]
fn mlp_agrees_across_devices() {
    let (device, tol) = device_under_test();
    compare(&mlp_spec(), device, tol);
}

#[test]
fn transformer_agrees_across_devices() {
    let (device, tol) = device_under_test();
    compare(&transformer_spec(), device, tol);
}

/// A CPU-only build rejects every CUDA device with the rebuild command.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_devices_name_the_rebuild_command_in_a_cpu_build() {
    for s in ["cuda", "cuda:0", "CUDA:3"] {
        let err = Device::parse(s).unwrap_err();
        let NnError::DeviceUnavailable { requested, reason } = &err else {
            panic!("{s}: expected DeviceUnavailable, found {err:?}");
        };
        assert_eq!(
            requested,
            &Device::try_from(s.to_string()).unwrap().to_string()
        );
        assert!(
            reason.contains("not compiled") && reason.contains(REBUILD),
            "{reason}"
        );
        assert!(err.to_string().contains(REBUILD), "{err}");
        assert!(!Device::try_from(s.to_string()).unwrap().is_available());
    }
    // Building a model on a CUDA device fails the same way, for every architecture.
    for spec in [mlp_spec(), transformer_spec()] {
        let err = Model::new(
            &spec,
            &optimizer(),
            Device::Cuda(0),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap_err();
        assert!(
            matches!(&err, NnError::DeviceUnavailable { reason, .. } if reason.contains(REBUILD)),
            "{err:?}"
        );
    }
}

/// A CUDA build rejects a device that is not there with a reason (no GPU, stub driver, or an
/// ordinal out of range), never by panicking and never with the CPU-only build's message.
#[cfg(feature = "cuda")]
#[test]
fn missing_cuda_devices_are_reported_in_a_cuda_build() {
    let device = Device::Cuda(100_000);
    let err = Device::parse(&device.to_string()).unwrap_err();
    let NnError::DeviceUnavailable { requested, reason } = &err else {
        panic!("expected DeviceUnavailable, found {err:?}");
    };
    assert_eq!(requested, "cuda:100000");
    assert!(!reason.contains("not compiled"), "{reason}");
    assert!(!reason.is_empty());
    let err = Model::new(
        &mlp_spec(),
        &optimizer(),
        device,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap_err();
    assert!(matches!(err, NnError::DeviceUnavailable { .. }), "{err:?}");
    // `cuda:0` either works (a GPU is there) or is unavailable with a reason.
    match Device::parse("cuda") {
        Ok(d) => assert_eq!(d, Device::Cuda(0)),
        Err(e) => assert!(matches!(e, NnError::DeviceUnavailable { .. }), "{e:?}"),
    }
}
