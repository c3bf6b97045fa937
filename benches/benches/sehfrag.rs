//! The sEH proxy and the path fingerprint of `sehfrag`: one molecule at a time, and batches of
//! 32 (the batch `log_reward` uses), over 64 molecules drawn with uniformly random actions. Run
//! with `cargo bench -p softgfn-benches --bench sehfrag`; divide by the molecules per iteration
//! for ms per molecule.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use softgfn_core::rng::{Stream, stream};
use softgfn_sehfrag::proxy::ProxyScratch;
use softgfn_sehfrag::{Molecule, Sehfrag, SehfragConfig, fingerprint};

/// 64 molecules sampled with every allowed action equally likely (seed 1).
fn molecules(env: &Sehfrag) -> Vec<Molecule> {
    let mut rng = stream(1, Stream::Eval);
    (0..64)
        .map(|_| {
            env.molecule(&env.sample_uniform(&mut rng).unwrap())
                .unwrap()
        })
        .collect()
}

fn proxy(c: &mut Criterion) {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let mols = molecules(&env);
    let p = env.proxy();
    let mut g = c.benchmark_group("sehfrag_proxy_64_molecules");
    g.sample_size(10);
    g.throughput(Throughput::Elements(64));
    g.bench_function("single", |b| {
        b.iter(|| {
            for m in &mols {
                black_box(p.score(m));
            }
        })
    });
    let refs: Vec<&Molecule> = mols.iter().collect();
    let mut scratch = ProxyScratch::default();
    let mut out = vec![0.0; 64];
    g.bench_function("batch_32", |b| {
        b.iter(|| {
            for (m, o) in refs.chunks(32).zip(out.chunks_mut(32)) {
                p.score_batch(m, &mut scratch, o);
            }
            black_box(&out);
        })
    });
    g.bench_function("fingerprint", |b| {
        b.iter(|| {
            for m in &mols {
                black_box(fingerprint(m));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, proxy);
criterion_main!(benches);
