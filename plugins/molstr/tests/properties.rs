//! Property tests of the invariants of `qm9str` (K = 11 blocks, L = 5) and `sehstr` (K = 18,
//! L = 6) on random strings and random walks through the prepend/append DAG:
//! - the printed form and the state row are inverse (`string_of` / `parse_state`);
//! - masks: below length L every prepend is valid, append only on non-empty strings, stop never;
//!   at length L only stop; backward masks are `[n >= 1, n >= 2]`; `step` / `backward_step`
//!   accept exactly what the masks allow;
//! - prepend is undone by "remove first", append by "remove last", and backward steps are redone
//!   by the forward action they return;
//! - `state_index` / `states_from_index` are inverse bijections, strings of length `n` taking the
//!   indices `sum_{m<n} K^m ..`;
//! - `encode` is one-hot per slot (exactly L ones, the empty marker included);
//! - `log_reward` is finite on complete strings (at most `log(scale)`), an error on others;
//! - arbitrary rows are errors, never panics.

use std::sync::LazyLock;

use proptest::prelude::*;
use softgfn_core::{Environment, EnvironmentExt, StateValue};
use softgfn_molstr::{Qm9Str, Qm9StrConfig, SYMBOLS, SehStr, SehStrConfig};

static QM9: LazyLock<Qm9Str> = LazyLock::new(|| Qm9Str::new(Qm9StrConfig::default()).unwrap());
static SEH: LazyLock<SehStr> = LazyLock::new(|| SehStr::new(SehStrConfig::default()).unwrap());

/// The state row of a string of blocks: `[n, b_0, .., b_{n-1}, K, .., K]`.
fn row_of(k: usize, l: usize, blocks: &[usize]) -> Vec<StateValue> {
    let mut r = vec![k as StateValue; l + 1];
    r[0] = blocks.len() as StateValue;
    for (j, &b) in blocks.iter().enumerate() {
        r[1 + j] = b as StateValue;
    }
    r
}

fn text_of(blocks: &[usize]) -> String {
    blocks.iter().map(|&b| SYMBOLS[b] as char).collect()
}

/// Number of strings shorter than `n`: `sum_{m < n} K^m`.
fn offset(k: u64, n: usize) -> u64 {
    (0..n).map(|m| k.pow(m as u32)).sum()
}

/// The invariants of one environment on one string.
fn check_string(
    env: &dyn Environment,
    k: usize,
    l: usize,
    blocks: &[usize],
) -> Result<(), TestCaseError> {
    let s = row_of(k, l, blocks);
    let n = blocks.len();
    let spec = env.spec();
    prop_assert_eq!(spec.state_width, l + 1);
    prop_assert_eq!(spec.num_actions, 2 * k + 1);
    prop_assert_eq!(spec.exit_action, Some(2 * k as u32));

    // Forward mask and steps.
    let fm = env
        .forward_mask_of(&s)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for a in 0..2 * k + 1 {
        let want = if n == l {
            a == 2 * k
        } else if a < k {
            true
        } else {
            a < 2 * k && n >= 1
        };
        prop_assert_eq!(fm[a], want, "forward mask of {:?} at {}", blocks, a);
        if a < 2 * k {
            prop_assert_eq!(
                env.step_one(&s, a as u32).is_ok(),
                want,
                "step({:?}, {})",
                blocks,
                a
            );
        }
    }
    prop_assert!(
        env.step_one(&s, 2 * k as u32).is_err(),
        "stop has no next state"
    );
    prop_assert_eq!(env.is_terminal_state(&s).unwrap(), n == l);
    if n < l {
        for c in 0..k {
            // Prepend c, then remove first.
            let (next, b) = env.step_one(&s, c as u32).unwrap();
            let mut want = vec![c];
            want.extend_from_slice(blocks);
            prop_assert_eq!(&next, &row_of(k, l, &want));
            prop_assert_eq!(b, 0);
            prop_assert_eq!(
                env.backward_step_one(&next, b).unwrap(),
                (s.clone(), c as u32)
            );
            if n >= 1 {
                // Append c, then remove last.
                let (next, b) = env.step_one(&s, (k + c) as u32).unwrap();
                let mut want = blocks.to_vec();
                want.push(c);
                prop_assert_eq!(&next, &row_of(k, l, &want));
                prop_assert_eq!(b, 1);
                prop_assert_eq!(
                    env.backward_step_one(&next, b).unwrap(),
                    (s.clone(), (k + c) as u32)
                );
            }
        }
    }

    // Backward mask and steps.
    let bm = env.backward_mask_of(&s).unwrap();
    prop_assert_eq!(&bm, &vec![n >= 1, n >= 2]);
    for b in 0..3u32 {
        let r = env.backward_step_one(&s, b);
        prop_assert_eq!(
            r.is_ok(),
            b < 2 && bm[b as usize],
            "backward_step({:?}, {})",
            blocks,
            b
        );
        if let Ok((prev, a)) = r {
            let want = if b == 0 {
                &blocks[1..]
            } else {
                &blocks[..n - 1]
            };
            prop_assert_eq!(&prev, &row_of(k, l, want));
            prop_assert!(env.forward_mask_of(&prev).unwrap()[a as usize]);
            prop_assert_eq!(env.step_one(&prev, a).unwrap(), (s.clone(), b));
        }
    }

    // Indices.
    let en = env.as_enumerable().unwrap();
    let mut i = [0u64];
    en.state_index(&s, &mut i).unwrap();
    let kk = k as u64;
    let rank = blocks.iter().fold(0u64, |acc, &b| acc * kk + b as u64);
    prop_assert_eq!(i[0], offset(kk, n) + rank);
    prop_assert!(i[0] < en.num_states());
    let mut back = vec![0; l + 1];
    en.states_from_index(&i, &mut back).unwrap();
    prop_assert_eq!(&back, &s);

    // Features: one-hot per slot.
    let f = spec.feature_dim;
    prop_assert_eq!(f, l * (k + 1));
    let mut feats = vec![f32::NAN; f];
    env.encode(&s, &mut feats).unwrap();
    prop_assert!(feats.iter().all(|&v| v == 0.0 || v == 1.0));
    prop_assert_eq!(feats.iter().filter(|&&v| v == 1.0).count(), l);
    for j in 0..l {
        let b = blocks.get(j).copied().unwrap_or(k);
        prop_assert_eq!(feats[j * (k + 1) + b], 1.0, "slot {} of {:?}", j, blocks);
    }

    // Rewards.
    let lr = env.log_reward_of(&s);
    if n == l {
        let lr = lr.unwrap();
        prop_assert!(lr.is_finite(), "log_reward({:?}) = {}", blocks, lr);
    } else {
        prop_assert!(
            lr.is_err(),
            "log_reward of an incomplete string {:?}",
            blocks
        );
    }
    Ok(())
}

/// Walks from `s0` with the `choices` (each picks among the valid non-stop actions), checking
/// that the walk back with the returned backward actions retraces it.
fn check_walk(env: &dyn Environment, choices: &[prop::sample::Index]) -> Result<(), TestCaseError> {
    let exit = env.spec().exit_action.unwrap();
    let mut s = env.initial_row();
    prop_assert!(
        env.backward_mask_of(&s).unwrap().iter().all(|&v| !v),
        "s0 has no parent"
    );
    let mut path = vec![(s.clone(), 0u32, 0u32)];
    for c in choices {
        let m = env.forward_mask_of(&s).unwrap();
        let valid: Vec<u32> = (0..m.len() as u32)
            .filter(|&a| m[a as usize] && a != exit)
            .collect();
        if valid.is_empty() {
            prop_assert!(
                m[exit as usize],
                "a dead end must be a complete string with stop"
            );
            break;
        }
        let a = valid[c.index(valid.len())];
        let (next, b) = env.step_one(&s, a).unwrap();
        path.push((next.clone(), a, b));
        s = next;
    }
    prop_assert!(path.len() <= env.spec().max_trajectory_length);
    for w in path.windows(2).rev() {
        let (prev, _, _) = &w[0];
        let (cur, a, b) = &w[1];
        prop_assert_eq!(env.backward_step_one(cur, *b).unwrap(), (prev.clone(), *a));
    }
    Ok(())
}

/// Arbitrary rows and actions: every call returns (an error for malformed rows).
fn check_no_panic(
    env: &dyn Environment,
    k: usize,
    l: usize,
    row: &[StateValue],
    action: u32,
) -> Result<(), TestCaseError> {
    let valid_row = row.len() == l + 1
        && (0..=l as StateValue).contains(&row[0])
        && row[1..].iter().enumerate().all(|(j, &b)| {
            if j < row[0] as usize {
                (0..k as StateValue).contains(&b)
            } else {
                b == k as StateValue
            }
        });
    prop_assert_eq!(env.forward_mask_of(row).is_ok(), valid_row, "{:?}", row);
    prop_assert_eq!(env.backward_mask_of(row).is_ok(), valid_row, "{:?}", row);
    let _ = env.step_one(row, action);
    let _ = env.backward_step_one(row, action);
    let _ = env.log_reward_of(row);
    let mut feats = vec![0f32; env.spec().feature_dim];
    let _ = env.encode(row, &mut feats);
    let mut idx = [0u64];
    let en = env.as_enumerable().unwrap();
    let _ = en.state_index(row, &mut idx);
    let mut out = vec![0; l + 1];
    let _ = en.states_from_index(&[u64::from(action) * 1_000_003], &mut out);
    Ok(())
}

/// A random string of `k` blocks of length `0..=l`.
fn string(k: usize, l: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..k, 0..=l)
}

/// A random row of `l + 1` small values around the valid range, or of a wrong length.
fn any_row(k: usize, l: usize) -> impl Strategy<Value = Vec<StateValue>> {
    prop_oneof![
        prop::collection::vec(-2..=(k as StateValue + 2), l + 1),
        prop::collection::vec(any::<StateValue>(), 0..=2 * l + 3),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        // No regression files next to the sources: failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    })]

    #[test]
    fn qm9str_string_invariants(blocks in string(11, 5)) {
        let env = &*QM9;
        check_string(env, 11, 5, &blocks)?;
        let s = row_of(11, 5, &blocks);
        prop_assert_eq!(env.string_of(&s).unwrap(), text_of(&blocks));
        prop_assert_eq!(env.parse_state(&text_of(&blocks)).unwrap(), s.clone());
        if blocks.len() == 5 {
            let lr = env.log_reward_of(&s).unwrap();
            prop_assert!(lr <= 100f64.ln() + 1e-12, "{}", lr);
            let v = env.proxy_value(&s).unwrap();
            prop_assert_eq!(lr, env.proxy_reward().log_reward(v));
            let threshold = env.mode_threshold().ln();
            if (lr - threshold).abs() > 1e-9 {
                prop_assert_eq!(env.is_mode(&s).unwrap(), lr > threshold);
            }
        } else {
            prop_assert!(env.proxy_value(&s).is_err());
            prop_assert!(env.is_mode(&s).is_err());
        }
    }

    #[test]
    fn sehstr_string_invariants(blocks in string(18, 6)) {
        let env = &*SEH;
        check_string(env, 18, 6, &blocks)?;
        let s = row_of(18, 6, &blocks);
        prop_assert_eq!(env.string_of(&s).unwrap(), text_of(&blocks));
        prop_assert_eq!(env.parse_state(&text_of(&blocks)).unwrap(), s.clone());
        if blocks.len() == 6 {
            let lr = env.log_reward_of(&s).unwrap();
            prop_assert!(lr <= 10f64.ln() + 1e-9, "{}", lr);
            let v = env.proxy_value(&s).unwrap();
            prop_assert!((lr - env.proxy_reward().log_reward(v)).abs() < 1e-12);
        }
    }

    #[test]
    fn qm9str_indices_are_a_bijection(i in 0u64..177_156) {
        let env = &*QM9;
        let en = env.as_enumerable().unwrap();
        prop_assert_eq!(en.num_states(), 177_156);
        let mut s = vec![0; 6];
        en.states_from_index(&[i], &mut s).unwrap();
        let mut back = [0u64];
        en.state_index(&s, &mut back).unwrap();
        prop_assert_eq!(back[0], i);
        let mut past = vec![0; 6];
        prop_assert!(en.states_from_index(&[177_156], &mut past).is_err());
    }

    #[test]
    fn sehstr_indices_are_a_bijection(i in 0u64..36_012_943) {
        let env = &*SEH;
        let en = env.as_enumerable().unwrap();
        prop_assert_eq!(en.num_states(), 36_012_943);
        let mut s = vec![0; 7];
        en.states_from_index(&[i], &mut s).unwrap();
        let mut back = [0u64];
        en.state_index(&s, &mut back).unwrap();
        prop_assert_eq!(back[0], i);
    }

    #[test]
    fn qm9str_walks_retrace(choices in prop::collection::vec(any::<prop::sample::Index>(), 0..=8)) {
        check_walk(&*QM9, &choices)?;
    }

    #[test]
    fn sehstr_walks_retrace(choices in prop::collection::vec(any::<prop::sample::Index>(), 0..=8)) {
        check_walk(&*SEH, &choices)?;
    }

    #[test]
    fn qm9str_malformed_rows_are_errors(row in any_row(11, 5), action in any::<u32>()) {
        check_no_panic(&*QM9, 11, 5, &row, action)?;
    }

    #[test]
    fn sehstr_malformed_rows_are_errors(row in any_row(18, 6), action in any::<u32>()) {
        check_no_panic(&*SEH, 18, 6, &row, action)?;
    }

    #[test]
    fn printed_strings_with_foreign_symbols_are_errors(text in "[0-9a-zA-Z!?]{0,8}") {
        // qm9str knows the symbols 0-9 and a; longer strings than 5 are errors too.
        let env = &*QM9;
        let ok = text.len() <= 5 && text.bytes().all(|c| SYMBOLS[..11].contains(&c));
        prop_assert_eq!(env.parse_state(&text).is_ok(), ok, "{}", text);
    }
}
