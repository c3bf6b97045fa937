//! The paper's mode count (spec 5.1) and Pearson's correlation (spec 5.2).

use crate::fingerprint::Fingerprint;

/// A sampled molecule that reached the mode threshold: its proxy score (`8 R^(1/10)`) and its
/// fingerprint.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The mode score.
    pub score: f64,
    /// The path fingerprint.
    pub fingerprint: Fingerprint,
}

/// `(modes, candidates)` among `samples`: the candidates are those with `score >= threshold`;
/// sorted by score, descending (ties in sampling order), each is a new mode when its Tanimoto
/// similarity to every mode found before it is below `similarity`.
pub fn modes_found(samples: &[Candidate], threshold: f64, similarity: f64) -> (usize, usize) {
    let mut cands: Vec<&Candidate> = samples.iter().filter(|c| c.score >= threshold).collect();
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut modes: Vec<&Fingerprint> = Vec::new();
    for c in &cands {
        if modes.iter().all(|m| c.fingerprint.tanimoto(m) < similarity) {
            modes.push(&c.fingerprint);
        }
    }
    (modes.len(), cands.len())
}

/// Pearson's correlation of two equally long samples (NaN when either is constant or they
/// have fewer than 2 values).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}
