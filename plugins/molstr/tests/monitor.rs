//! `modes_found` of qm9str and sehstr: distinct sampled modes, cumulative, saved and restored.

use std::collections::BTreeSet;

use softgfn_core::rng::{Stream, below, stream};
use softgfn_core::{Environment, Monitor, StateValue};
use softgfn_molstr::{MODES_FOUND, Qm9Str, Qm9StrConfig, SehStr, SehStrConfig};

/// The complete string of `blocks` as a state row.
fn row(blocks: &[StateValue]) -> Vec<StateValue> {
    let mut r = vec![blocks.len() as StateValue];
    r.extend_from_slice(blocks);
    r
}

fn found(m: &mut dyn Monitor) -> f64 {
    let mut unused = |_: &[StateValue], _: &[u32], _: &mut [f64]| -> softgfn_core::Result<()> {
        panic!("modes_found does not evaluate the policy")
    };
    let out = m.evaluate(&mut unused).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, MODES_FOUND);
    out[0].1
}

#[test]
fn qm9str_counts_distinct_modes_cumulatively_and_resumes() {
    let env = Qm9Str::new(Qm9StrConfig::default()).unwrap();
    // All 11^5 complete strings, first block most significant.
    let (k, l) = (11usize, 5usize);
    let all: Vec<Vec<StateValue>> = (0..k.pow(l as u32))
        .map(|mut i| {
            let mut b = vec![0; l];
            for j in (0..l).rev() {
                b[j] = (i % k) as StateValue;
                i /= k;
            }
            row(&b)
        })
        .collect();
    let modes: Vec<&Vec<StateValue>> = all.iter().filter(|r| env.is_mode(r).unwrap()).collect();
    assert_eq!(modes.len() as u64, env.num_modes());
    let other = all.iter().find(|r| !env.is_mode(r).unwrap()).unwrap();

    let mut m = env.monitor().unwrap();
    assert_eq!(found(m.as_mut()), 0.0);
    // The same mode twice and a non-mode: one mode.
    m.observe(&[modes[0].clone(), modes[0].clone(), other.clone()].concat())
        .unwrap();
    assert_eq!(found(m.as_mut()), 1.0);
    m.observe(&[modes[1].clone(), modes[0].clone()].concat())
        .unwrap();
    assert_eq!(found(m.as_mut()), 2.0);
    // An incomplete string is an error and nothing of its batch counts.
    let mut partial = modes[2].clone();
    partial[0] = 4;
    partial[5] = 11;
    assert!(m.observe(&[modes[2].clone(), partial].concat()).is_err());
    assert!(m.observe(&modes[2][..3]).is_err());
    assert_eq!(found(m.as_mut()), 2.0);

    // Save and restore; both copies continue alike.
    let bytes = m.save();
    let mut r = env.monitor().unwrap();
    r.restore(&bytes).unwrap();
    assert_eq!(found(r.as_mut()), 2.0);
    for x in [m.as_mut(), r.as_mut()] {
        x.observe(modes[2]).unwrap();
    }
    assert_eq!(m.save(), r.save());
    assert_eq!(found(r.as_mut()), 3.0);
    // Another environment's monitor, a truncated or corrupt state: errors.
    let mut typed = env.modes_monitor();
    typed.restore(&bytes).unwrap();
    assert_eq!((typed.found(), typed.observed()), (2, 5));
    let other_env = Qm9Str::new(Qm9StrConfig {
        reward_exponent: 3.0,
        ..Default::default()
    })
    .unwrap();
    let e = other_env.monitor().unwrap().restore(&bytes).unwrap_err();
    assert!(
        e.to_string()
            .contains("another environment or mode threshold"),
        "{e}"
    );
    assert!(typed.restore(&bytes[..bytes.len() - 3]).is_err());
    assert!(typed.restore(b"nothing").is_err());
    let mut dup = bytes.clone();
    let n = dup.len();
    let first = dup[n - 16..n - 8].to_vec();
    dup[n - 8..].copy_from_slice(&first);
    assert!(
        typed
            .restore(&dup)
            .unwrap_err()
            .to_string()
            .contains("repeats")
    );
}

#[test]
fn sehstr_counts_sampled_modes() {
    let env = SehStr::new(SehStrConfig::default()).unwrap();
    let mut rng = stream(4, Stream::Sampling);
    let samples: Vec<Vec<StateValue>> = (0..20_000)
        .map(|_| {
            let b: Vec<StateValue> = (0..6).map(|_| below(&mut rng, 18) as StateValue).collect();
            row(&b)
        })
        .collect();
    let want: BTreeSet<&Vec<StateValue>> =
        samples.iter().filter(|r| env.is_mode(r).unwrap()).collect();
    assert!(!want.is_empty(), "0.1% of 20,000 random strings are modes");
    let mut m = env.monitor().unwrap();
    for batch in samples.chunks(16) {
        m.observe(&batch.concat()).unwrap();
    }
    assert_eq!(found(m.as_mut()), want.len() as f64);
    // A qm9str state does not restore into sehstr.
    let q = Qm9Str::new(Qm9StrConfig::default()).unwrap();
    let e = m.restore(&q.monitor().unwrap().save()).unwrap_err();
    assert!(e.to_string().contains("another environment"), "{e}");
}
