//! The mode count, the correlation and the monitor that reports them.

use softgfn_core::{Environment, EnvironmentExt, Monitor, StateValue};
use softgfn_sehfrag::{
    CANDIDATES, Candidate, MODES_FOUND, PEARSON, PEARSON_LAMBDA, Sehfrag, SehfragConfig,
    SehfragMonitor, TestSet, fingerprint, flat_action, modes_found, pearson,
};

fn build(env: &Sehfrag, actions: &[u32]) -> Vec<StateValue> {
    let mut s = env.initial_row();
    for &a in actions {
        s = env.step_one(&s, a).unwrap().0;
    }
    s
}

#[test]
fn modes_found_counts_dissimilar_candidates_greedily() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let fp = |actions: &[u32]| fingerprint(&env.molecule(&build(&env, actions)).unwrap());
    // Biphenyl with a fluorine on the second ring, at two different carbons: similar.
    let a = fp(&[flat_action(0, 0), flat_action(0, 0), flat_action(6, 25)]);
    let b = fp(&[flat_action(0, 0), flat_action(0, 0), flat_action(7, 25)]);
    // Piperidine with a methanol: dissimilar to both.
    let c = fp(&[flat_action(0, 4), flat_action(0, 1)]);
    assert!(a.tanimoto(&b) >= 0.7, "{}", a.tanimoto(&b));
    assert!(a.tanimoto(&c) < 0.7 && b.tanimoto(&c) < 0.7);
    let cands = vec![
        Candidate {
            score: 7.2,
            fingerprint: b.clone(),
        },
        Candidate {
            score: 7.5,
            fingerprint: a.clone(),
        },
        Candidate {
            score: 7.1,
            fingerprint: c.clone(),
        },
        Candidate {
            score: 6.9,
            fingerprint: c,
        },
    ];
    assert_eq!(modes_found(&cands, 7.0, 0.7), (2, 3));
    // A threshold above every score: nothing; a similarity of 1.0 keeps distinct prints apart.
    assert_eq!(modes_found(&cands, 8.0, 0.7), (0, 0));
    assert_eq!(modes_found(&cands[..2], 7.0, 1.0), (2, 2));
}

#[test]
fn pearson_of_monotone_and_anti_monotone_log_p() {
    let log_r = [-3.0, -1.5, 0.0, 2.0, 7.0];
    let up: Vec<f64> = log_r.iter().map(|x| 2.0 * x - 4.0).collect();
    let down: Vec<f64> = log_r.iter().map(|x| -0.5 * x + 1.0).collect();
    assert!((pearson(&log_r, &up) - 1.0).abs() < 1e-12);
    assert!((pearson(&log_r, &down) + 1.0).abs() < 1e-12);
    assert!(pearson(&log_r, &[1.0; 5]).is_nan());
    // By hand: x = (1, 2, 3), y = (1, 3, 2): cov = 1, var = 2 and 2, r = 1/2.
    assert!((pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
}

#[test]
fn the_test_set_has_the_paper_529_scored_molecules_and_log_p_sums_paths() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let t = TestSet::embedded(&env).unwrap();
    assert_eq!((t.molecules.len(), t.skipped), (529, 421));
    // Every graph edge is a valid action of its parent and leads to a state equivalent to its
    // child (the parent action re-builds the child molecule).
    for m in t.molecules.iter().take(60) {
        for &(child, parent, a) in &m.edges {
            assert!(env.forward_mask_of(&m.nodes[parent]).unwrap()[a as usize]);
            let (next, _) = env.step_one(&m.nodes[parent], a).unwrap();
            assert_eq!(
                env.canonical_key_of(&next).unwrap(),
                env.canonical_key_of(&m.nodes[child]).unwrap(),
                "molecule {}",
                m.id
            );
        }
    }
    // A policy giving probability 1/2 to every action: log p(x) = log(#paths) - (#blocks) ln 2
    // (- ln 2 more for stop). Molecule 0 (2 blocks, no stem): two orders of two steps.
    let mut half = |_: &[StateValue], a: &[u32], out: &mut [f64]| {
        out[..a.len()].fill(-(2f64).ln());
        Ok(())
    };
    let lp = t.log_p(&mut half, &[1.0, 2.0]).unwrap();
    let m0 = &t.molecules[0];
    assert_eq!((m0.id, m0.stop_valid), (0, false));
    assert!((lp[0][0] - (2.0f64.ln() - 2.0 * 2f64.ln())).abs() < 1e-12);
    assert!((lp[1][0] - (2.0f64.ln() - 4.0 * 2f64.ln())).abs() < 1e-12);
}

#[test]
fn the_monitor_reports_and_restores() {
    let env = Sehfrag::new(SehfragConfig {
        mode_threshold: 2.0,
        ..SehfragConfig::default()
    })
    .unwrap();
    let mut m: Box<dyn Monitor> = env.monitor().unwrap();
    let rows: Vec<StateValue> = [
        build(&env, &[flat_action(0, 0), flat_action(0, 0)]),
        build(&env, &[flat_action(0, 4), flat_action(0, 1)]),
    ]
    .concat();
    m.observe(&rows).unwrap();
    let mut uniform = |_: &[StateValue], a: &[u32], out: &mut [f64]| {
        out[..a.len()].fill(-1.0);
        Ok(())
    };
    let got = m.evaluate(&mut uniform).unwrap();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [MODES_FOUND, CANDIDATES, PEARSON, PEARSON_LAMBDA]);
    let mut scores = vec![0.0; 2];
    env.proxy_scores(&rows, &mut scores).unwrap();
    let cands = scores.iter().filter(|&&s| s >= 2.0).count() as f64;
    assert_eq!(got[1].1, cands);
    assert!(got[2].1.is_finite() && got[3].1.is_finite());
    let mut restored = SehfragMonitor::new(&env);
    restored.restore(&m.save()).unwrap();
    assert_eq!(restored.observed(), 2);
    assert_eq!(restored.evaluate(&mut uniform).unwrap(), got);
    assert!(restored.restore(b"BSM1....").is_err());
}
