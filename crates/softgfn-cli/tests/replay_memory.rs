//! Replay storage per transition on the shipped environments, now that masks are not stored
//! (they are recomputed from the states when a batch is sampled). The numbers are those of the
//! book's Performance chapter; "with masks" is what the buffer stored before (one byte per action
//! of the forward masks at `s` and `s'` and the backward mask at `s'`).

use softgfn_bitseq as _;
use softgfn_hypergrid as _;
use softgfn_sehfrag as _;
use softgfn_train::ReplayShape;

fn shape(env: &str, params: serde_json::Value) -> ReplayShape {
    let env = softgfn_core::registry::build_env(env, &params).unwrap();
    let s = env.spec();
    ReplayShape {
        state_width: s.state_width,
        num_actions: s.num_actions,
        num_backward_actions: s.num_backward_actions,
    }
}

#[test]
fn bytes_per_transition_of_the_shipped_environments() {
    let cases = [
        (
            "hypergrid 20^4",
            shape("hypergrid", serde_json::json!({"dim": 4, "side": 20})),
            64,
            50,
        ),
        (
            "bitseq n=120 k=8",
            shape("bitseq", serde_json::json!({"n": 120, "k": 8})),
            8_354,
            146,
        ),
        (
            "bitseq n=120 k=10",
            shape("bitseq", serde_json::json!({"n": 120, "k": 10})),
            26_759,
            122,
        ),
    ];
    for (name, s, before, after) in cases {
        println!(
            "{name}: {} -> {} bytes per transition",
            s.bytes_per_transition_with_masks(),
            s.bytes_per_transition()
        );
        assert_eq!(s.bytes_per_transition_with_masks(), before, "{name}");
        assert_eq!(s.bytes_per_transition(), after, "{name}");
    }
    let m = shape("sehfrag", serde_json::json!({}));
    println!(
        "sehfrag: {} -> {} bytes per transition; 1e6 transitions: {:.0} MB (+ 34 MB of priority trees)",
        m.bytes_per_transition_with_masks(),
        m.bytes_per_transition(),
        1e6 * m.bytes_per_transition() as f64 / 1e6
    );
    assert!(m.bytes_per_transition() < m.bytes_per_transition_with_masks());
}
