//! The score distribution of molecules sampled with every allowed flat action equally likely
//! against the reference's `uniform_action` half (ids 0-999, sampled by the paper's code).

mod common;

use softgfn_core::Environment;
use softgfn_core::rng::{Stream, stream};
use softgfn_sehfrag::{Sehfrag, SehfragConfig};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn uniform_action_scores_match_the_paper_sampler() {
    let reference: Vec<f64> = common::read_jsonl("ref_random2000.jsonl.gz")
        .iter()
        .filter(|r| r["policy"] == "uniform_action")
        .map(|r| r["proxy_score"].as_f64().unwrap())
        .collect();
    assert_eq!(reference.len(), 1000);
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let mut rng = stream(7, Stream::Eval);
    let w = env.spec().state_width;
    let mut rows = Vec::with_capacity(2000 * w);
    for _ in 0..2000 {
        rows.extend_from_slice(&env.sample_uniform(&mut rng).unwrap());
    }
    let mut ours = vec![0.0; 2000];
    env.proxy_scores(&rows, &mut ours).unwrap();
    let mut refs = reference.clone();
    refs.sort_by(f64::total_cmp);
    ours.sort_by(f64::total_cmp);
    let clamped = |v: &[f64]| v.iter().filter(|&&s| s < 0.1).count() as f64 / v.len() as f64;
    let (median, ref_median) = (quantile(&ours, 0.5), quantile(&refs, 0.5));
    // Two-sample Kolmogorov-Smirnov distance.
    let cdf = |v: &[f64], x: f64| v.partition_point(|&y| y <= x) as f64 / v.len() as f64;
    let ks = refs
        .iter()
        .chain(&ours)
        .map(|&x| (cdf(&refs, x) - cdf(&ours, x)).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "uniform actions: median {median:.3} (reference {ref_median:.3}), clamped {:.3} (reference {:.3}), KS distance {ks:.4}",
        clamped(&ours),
        clamped(&refs)
    );
    assert_eq!(clamped(&refs), 0.1);
    assert!((ref_median - 2.80).abs() < 0.01);
    // Tolerances at a false-alarm rate of about 1e-3 for two independent samples of 1,000 and
    // 2,000 draws: the median between the reference quantiles 0.5 -/+ 3.3 sqrt(1/4000 + 1/4000)
    // (order statistics, distribution-free); the clamped fraction within 3.3 standard errors
    // sqrt(0.09 (1/1000 + 1/2000)); KS below 1.95 sqrt(3000 / 2e6).
    let half = 3.3 * (0.25f64 / 2000.0 + 0.25 / 1000.0).sqrt();
    assert!(median >= quantile(&refs, 0.5 - half) && median <= quantile(&refs, 0.5 + half));
    assert!((clamped(&ours) - 0.1).abs() < 3.3 * (0.09f64 * 0.0015).sqrt());
    assert!(ks < 1.95 * (3000.0f64 / 2e6).sqrt());
}
