//! Safetensors checkpoints.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{Device, HeadSpec, MlpSpec, Model, NnError, OptimizerSpec, ScalarSpec};

fn model(seed: u64, hidden: usize) -> Model {
    let spec = MlpSpec {
        input_dim: 5,
        hidden_dims: vec![hidden, hidden],
        heads: vec![HeadSpec::new("pf", 4), HeadSpec::new("pb", 3)],
        scalars: vec![ScalarSpec::new("log_z", 1.5)],
    };
    Model::mlp(
        &spec,
        &OptimizerSpec::default(),
        Device::Cpu,
        &mut ChaCha8Rng::seed_from_u64(seed),
    )
    .unwrap()
}

#[test]
fn save_load_round_trip_is_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut a = model(1, 16);
    a.set_scalar(0, -0.123_456_79);
    a.save_safetensors(&path).unwrap();
    // Saving again over an existing file works (atomic replace) and leaves no temp files.
    a.save_safetensors(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.safetensors")]);

    let mut b = model(2, 16);
    assert_ne!(a.parameters(), b.parameters());
    b.load_safetensors(&path).unwrap();
    for (x, y) in a.parameters().iter().zip(&b.parameters()) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.shape, y.shape);
        let xb: Vec<u32> = x.data.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u32> = y.data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(xb, yb, "{}", x.name);
    }
    assert_eq!(b.scalar(0), -0.123_456_79);
}

#[test]
fn truncated_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    model(1, 8).save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for len in [bytes.len() - 1, bytes.len() / 2, 20, 3, 0] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let err = model(2, 8).load_safetensors(&path).unwrap_err();
        assert!(matches!(err, NnError::Format { .. }), "{len}: {err:?}");
        assert!(err.to_string().contains("ckpt.safetensors"), "{err}");
    }
}

#[test]
fn missing_file_and_wrong_architecture_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let err = model(1, 8).load_safetensors(&missing).unwrap_err();
    assert!(matches!(err, NnError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.safetensors"));

    let path = dir.path().join("small.safetensors");
    model(1, 8).save_safetensors(&path).unwrap();
    let mut big = model(1, 16);
    let before = big.parameters();
    let msg = big.load_safetensors(&path).unwrap_err().to_string();
    assert!(
        msg.contains("small.safetensors") && msg.contains("torso.0.weight"),
        "{msg}"
    );
    assert_eq!(big.parameters(), before);

    let err = model(1, 8)
        .save_safetensors(&dir.path().join("no/such/dir/x.safetensors"))
        .unwrap_err();
    assert!(matches!(err, NnError::Io { .. }), "{err:?}");
}
