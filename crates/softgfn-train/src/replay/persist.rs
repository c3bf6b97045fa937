//! The checkpoint form of a [`ReplayBuffer`]: exact (floats as bit patterns, flags packed) and
//! validated when loaded.

use std::borrow::Cow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use softgfn_core::{NO_BACKWARD_ACTION, StateValue};

use super::buffer::{ReplayBuffer, ReplayShape, Sampling};

/// Version of the serialized buffer layout. Version 1 also stored the three mask columns;
/// version 2 writes them empty (the fields stay, so that both versions share one layout) and
/// version 1's are checked and dropped when loading.
const REPR_VERSION: u32 = 2;

/// Bits packed into 64-bit words (bit `k % 64` of word `k / 64`).
fn pack_bits(bits: &[bool]) -> Vec<u64> {
    let mut words = vec![0u64; bits.len().div_ceil(64)];
    for (k, &b) in bits.iter().enumerate() {
        if b {
            words[k / 64] |= 1 << (k % 64);
        }
    }
    words
}

/// The first `n` bits of `words`, or `None` if the word count does not match `n`.
fn unpack_bits(words: &[u64], n: usize) -> Option<Vec<bool>> {
    if words.len() != n.div_ceil(64) {
        return None;
    }
    Some((0..n).map(|k| words[k / 64] >> (k % 64) & 1 == 1).collect())
}

/// Serialized form of a [`ReplayBuffer`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BufferRepr<'a> {
    version: u32,
    shape: ReplayShape,
    capacity: usize,
    sampling: Sampling,
    len: usize,
    cursor: usize,
    states: Cow<'a, [StateValue]>,
    next_states: Cow<'a, [StateValue]>,
    /// Version 1 only (empty since version 2).
    forward_masks: Vec<u64>,
    /// Version 1 only (empty since version 2).
    next_forward_masks: Vec<u64>,
    /// Version 1 only (empty since version 2).
    next_backward_masks: Vec<u64>,
    actions: Cow<'a, [u32]>,
    backward_actions: Cow<'a, [u32]>,
    terminal_log_rewards_bits: Vec<u64>,
    done: Vec<u64>,
    exit: Vec<u64>,
    /// Stored priorities of slots `0..len` (prioritized buffers only).
    priorities_bits: Option<Vec<u64>>,
    /// Running maximum raw priority (prioritized buffers only).
    max_priority_bits: Option<u64>,
}

impl Serialize for ReplayBuffer {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        BufferRepr {
            version: REPR_VERSION,
            shape: self.shape,
            capacity: self.capacity,
            sampling: self.sampling,
            len: self.len,
            cursor: self.cursor,
            states: Cow::Borrowed(&self.states),
            next_states: Cow::Borrowed(&self.next_states),
            forward_masks: Vec::new(),
            next_forward_masks: Vec::new(),
            next_backward_masks: Vec::new(),
            actions: Cow::Borrowed(&self.actions),
            backward_actions: Cow::Borrowed(&self.backward_actions),
            terminal_log_rewards_bits: self
                .terminal_log_rewards
                .iter()
                .map(|v| v.to_bits())
                .collect(),
            done: pack_bits(&self.done),
            exit: pack_bits(&self.exit),
            priorities_bits: self
                .per
                .as_ref()
                .map(|p| (0..self.len).map(|i| p.sum.get(i).to_bits()).collect()),
            max_priority_bits: self.per.as_ref().map(|p| p.max_priority.to_bits()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplayBuffer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = BufferRepr::deserialize(d)?;
        ReplayBuffer::from_repr(r).map_err(|e| D::Error::custom(format!("replay buffer: {e}")))
    }
}

impl ReplayBuffer {
    /// Rebuilds and validates a buffer from its serialized form.
    fn from_repr(r: BufferRepr<'_>) -> std::result::Result<Self, String> {
        if !(1..=REPR_VERSION).contains(&r.version) {
            return Err(format!(
                "layout version {}; expected 1 to {REPR_VERSION}",
                r.version
            ));
        }
        let mut b =
            ReplayBuffer::new(r.shape, r.capacity, r.sampling).map_err(|e| e.to_string())?;
        let n = r.len;
        if n > r.capacity {
            return Err(format!("len {n}; expected at most capacity {}", r.capacity));
        }
        let cursor_ok = if n < r.capacity {
            r.cursor == n
        } else {
            r.cursor < r.capacity
        };
        if !cursor_ok {
            return Err(format!(
                "write position {} with {n} of {} slots filled; expected {}",
                r.cursor,
                r.capacity,
                if n < r.capacity {
                    format!("{n}")
                } else {
                    format!("a slot < {}", r.capacity)
                }
            ));
        }
        let s = r.shape;
        let column =
            |name: &str, found: usize, per_row: usize| -> std::result::Result<(), String> {
                if found == n * per_row {
                    Ok(())
                } else {
                    Err(format!(
                        "column `{name}` has {found} values; expected {}",
                        n * per_row
                    ))
                }
            };
        column("states", r.states.len(), s.state_width)?;
        column("next_states", r.next_states.len(), s.state_width)?;
        column("actions", r.actions.len(), 1)?;
        column("backward_actions", r.backward_actions.len(), 1)?;
        column(
            "terminal_log_rewards_bits",
            r.terminal_log_rewards_bits.len(),
            1,
        )?;
        let unpack = |name: &str, words: &[u64], bits: usize| {
            unpack_bits(words, bits).ok_or_else(|| {
                format!(
                    "column `{name}` has {} words; expected {} for {bits} flags",
                    words.len(),
                    bits.div_ceil(64)
                )
            })
        };
        // Version 1's masks: checked for length, then dropped (they are recomputed from the
        // states when sampled); version 2 has none.
        let rows = if r.version == 1 { n } else { 0 };
        unpack("forward_masks", &r.forward_masks, rows * s.num_actions)?;
        unpack(
            "next_forward_masks",
            &r.next_forward_masks,
            rows * s.num_actions,
        )?;
        unpack(
            "next_backward_masks",
            &r.next_backward_masks,
            rows * s.num_backward_actions,
        )?;
        b.done = unpack("done", &r.done, n)?;
        b.exit = unpack("exit", &r.exit, n)?;
        b.states = r.states.into_owned();
        b.next_states = r.next_states.into_owned();
        b.actions = r.actions.into_owned();
        b.backward_actions = r.backward_actions.into_owned();
        b.terminal_log_rewards = r
            .terminal_log_rewards_bits
            .iter()
            .map(|&x| f64::from_bits(x))
            .collect();
        for i in 0..n {
            let (action, back) = (b.actions[i], b.backward_actions[i]);
            if action as usize >= s.num_actions {
                return Err(format!(
                    "slot {i} has action {action}; expected < num_actions = {}",
                    s.num_actions
                ));
            }
            let back_ok = if b.exit[i] {
                back == NO_BACKWARD_ACTION && b.done[i]
            } else {
                (back as usize) < s.num_backward_actions
            };
            if !back_ok {
                return Err(format!(
                    "slot {i} has backward action {back} (exit = {}, done = {}); expected \
                     NO_BACKWARD_ACTION with done for an exit, < {} otherwise",
                    b.exit[i], b.done[i], s.num_backward_actions
                ));
            }
            if b.terminal_log_rewards[i].is_nan() {
                return Err(format!(
                    "slot {i} has a NaN terminal log-reward; expected a number"
                ));
            }
        }
        b.len = n;
        b.cursor = r.cursor;
        match (b.per.as_mut(), r.priorities_bits, r.max_priority_bits) {
            (None, None, None) => {}
            (Some(per), Some(priorities), Some(max_bits)) => {
                if priorities.len() != n {
                    return Err(format!(
                        "{} stored priorities; expected {n}",
                        priorities.len()
                    ));
                }
                let max_priority = f64::from_bits(max_bits);
                if !(max_priority.is_finite() && max_priority >= 0.0) {
                    return Err(format!(
                        "maximum priority {max_priority}; expected a finite number >= 0"
                    ));
                }
                per.max_priority = max_priority;
                for (i, &bits) in priorities.iter().enumerate() {
                    let v = f64::from_bits(bits);
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(format!(
                            "slot {i} has stored priority {v}; expected a finite number >= 0"
                        ));
                    }
                }
                let values = || priorities.iter().map(|&bits| f64::from_bits(bits));
                per.sum.fill(values())?;
                per.min
                    .fill(values().map(|v| if v > 0.0 { v } else { f64::INFINITY }))?;
            }
            _ => {
                return Err(
                    "priorities present or missing against the sampling scheme; expected them \
                     exactly for prioritized sampling"
                        .into(),
                );
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        let bits: Vec<bool> = (0..130).map(|k| k % 3 == 0 || k == 129).collect();
        let words = pack_bits(&bits);
        assert_eq!(words.len(), 3);
        assert_eq!(unpack_bits(&words, 130).unwrap(), bits);
        assert!(unpack_bits(&words, 200).is_none());
        assert!(unpack_bits(&[], 0).unwrap().is_empty());
    }
}
