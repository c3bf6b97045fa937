//! Criterion benchmarks of softgfn live in `benches/softgfn.rs`
//! (`cargo bench -p softgfn-benches`); this library is empty.
