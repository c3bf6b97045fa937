//! Numbered single-file examples of softgfn live in `examples/`; this library is empty.
