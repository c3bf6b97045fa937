//! `softgfn-custom`: the `softgfn` command line with this crate's algorithms registered
//! (`lpv`, `soft_twin_q`) next to the workspace's.

// ANCHOR: main
use softgfn_custom_algorithms as _; // links the registrations of `lpv` and `soft_twin_q`

fn main() {
    softgfn_cli::main()
}
// ANCHOR_END: main
