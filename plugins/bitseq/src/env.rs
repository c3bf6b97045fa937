//! The `bitseq` environment: `Environment` and `Enumerable`.

use softgfn_core::rng::{Stream, stream};
use softgfn_core::{
    CoreError, Enumerable, EnvSpec, Environment, Monitor, Readable, Result, SequenceLayout,
    StateValue, TokenActions, parse_params,
};

use crate::NAME;
use crate::config::BitseqConfig;
use crate::modes::{ModeSet, ModeTracker, TestSet};
use crate::monitor::BitseqMonitor;
use crate::shape::Shape;

/// Instances with more states than this are not enumerable ([`Environment::as_enumerable`]
/// returns `None`), even when the count fits in `u64`.
pub const MAX_ENUMERABLE_STATES: u64 = 1 << 40;

/// The non-autoregressive bit-sequence environment (see the crate docs for the encodings).
#[derive(Clone, Debug)]
pub struct Bitseq {
    config: BitseqConfig,
    spec: EnvSpec,
    shape: Shape,
    modes: ModeSet,
    num_states: Option<u64>,
}

impl Bitseq {
    /// Builds a validated instance and generates its mode set.
    pub fn new(config: BitseqConfig) -> Result<Self> {
        config.validate()?;
        let shape = Shape::new(config.n, config.k);
        let modes = ModeSet::generate(&config)?;
        let (l, base) = (shape.l, shape.base);
        let num_states = (base as u64 + 1)
            .checked_pow(l as u32)
            .filter(|&s| s <= MAX_ENUMERABLE_STATES);
        Ok(Self {
            spec: EnvSpec {
                name: NAME.into(),
                state_width: l + 1,
                num_actions: (l + 1) * base,
                num_backward_actions: l + 1,
                feature_dim: (l + 1) * (base + 2),
                max_trajectory_length: l,
                exit_action: None,
            },
            config,
            shape,
            modes,
            num_states,
        })
    }

    /// Builds from JSON parameters (missing keys take their defaults).
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params(NAME, params)?)
    }

    /// The configuration.
    pub fn config(&self) -> &BitseqConfig {
        &self.config
    }

    /// String length `n` in bits.
    pub fn n(&self) -> usize {
        self.shape.n
    }

    /// Bits per word `k`.
    pub fn k(&self) -> usize {
        self.shape.k
    }

    /// Words per string `n / k` (the number of steps of every trajectory).
    pub fn num_words(&self) -> usize {
        self.shape.l
    }

    /// The EMPTY token `2^k`.
    pub fn empty_token(&self) -> StateValue {
        self.shape.empty()
    }

    /// The BOS token `2^k + 1`.
    pub fn bos_token(&self) -> StateValue {
        self.shape.bos()
    }

    /// The forward action writing `word` at `position` (`position * 2^k + word`).
    pub fn action(&self, position: usize, word: u32) -> u32 {
        (position * self.shape.base) as u32 + word
    }

    /// The `(position, word)` of a forward action.
    pub fn position_and_word(&self, action: u32) -> (usize, u32) {
        let base = self.shape.base as u32;
        ((action / base) as usize, action % base)
    }

    /// The mode set `M`.
    pub fn modes(&self) -> &ModeSet {
        &self.modes
    }

    /// `log ((n/k)!)`: the number of construction orders of every string, in log space
    /// (`-log P_B(tau | x)` of each of its trajectories under the uniform backward policy).
    pub fn log_num_orders(&self) -> f64 {
        (2..=self.shape.l).map(|i| (i as f64).ln()).sum()
    }

    /// The Spearman test set of this instance, drawn from
    /// `softgfn_core::rng::stream(mode_seed, Stream::Eval)` (see [`ModeSet::test_set`]).
    pub fn test_set(&self) -> TestSet {
        self.modes
            .test_set(&mut stream(self.config.mode_seed, Stream::Eval))
    }

    /// A "modes found" tracker with the configured `mode_threshold`.
    pub fn mode_tracker(&self) -> ModeTracker {
        ModeTracker::new(self.modes.clone(), self.config.mode_threshold)
    }

    /// The bits of a state as text: `0`/`1` per bit, `-` for each bit of an EMPTY word
    /// (`s0` of `n = 4, k = 2` is `"----"`).
    pub fn bit_string(&self, state: &[StateValue]) -> Result<String> {
        self.shape.check_row(state)?;
        let k = self.shape.k;
        let mut out = String::with_capacity(self.shape.n);
        for &t in &state[1..] {
            if t == self.shape.empty() {
                out.extend(std::iter::repeat_n('-', k));
            } else {
                for i in (0..k).rev() {
                    out.push(if (t >> i) & 1 == 1 { '1' } else { '0' });
                }
            }
        }
        Ok(out)
    }

    /// The state row of a text of `n` characters `0`, `1` or `-` (inverse of
    /// [`Bitseq::bit_string`]; a word must be all `-` or all bits).
    pub fn state_from_bit_string(&self, text: &str) -> Result<Vec<StateValue>> {
        let (n, k) = (self.shape.n, self.shape.k);
        let bad = |reason: String| CoreError::InvalidState {
            env: NAME.into(),
            state: vec![],
            reason,
        };
        if text.len() != n || !text.bytes().all(|c| matches!(c, b'0' | b'1' | b'-')) {
            return Err(bad(format!(
                "bit string {text:?}: expected n = {n} characters `0`, `1` or `-`"
            )));
        }
        let mut row = vec![0; self.shape.width()];
        self.shape.initial(&mut row);
        for (j, word) in text.as_bytes().chunks_exact(k).enumerate() {
            if word.iter().all(|&c| c == b'-') {
                continue;
            }
            if word.contains(&b'-') {
                return Err(bad(format!(
                    "bit string {text:?}: word {j} mixes `-` and bits (a word is written whole)"
                )));
            }
            row[1 + j] = word
                .iter()
                .fold(0, |acc, &c| (acc << 1) | StateValue::from(c - b'0'));
        }
        Ok(row)
    }

    /// The bits (values 0/1) of a complete state.
    pub fn bits_of(&self, state: &[StateValue]) -> Result<Vec<u8>> {
        let words = self.shape.complete_words(state, "bits_of")?;
        Ok(self.shape.bits_of_words(words.iter().map(|&w| w as u32)))
    }

    /// The complete state row of `n` bits (values 0/1).
    pub fn state_of_bits(&self, bits: &[u8]) -> Result<Vec<StateValue>> {
        if bits.len() != self.shape.n || bits.iter().any(|&b| b > 1) {
            return Err(CoreError::InvalidState {
                env: NAME.into(),
                state: vec![],
                reason: format!("expected n = {} bits of value 0 or 1", self.shape.n),
            });
        }
        let mut row = vec![self.shape.bos()];
        row.extend(
            self.shape
                .words_of_bits(bits)
                .into_iter()
                .map(|w| w as StateValue),
        );
        Ok(row)
    }

    pub(crate) fn shape(&self) -> &Shape {
        &self.shape
    }

    fn rows(&self, what: &str, states: &[StateValue]) -> Result<usize> {
        self.spec.rows_of(what, states)
    }

    fn invalid_action(&self, s: &[StateValue], action: u32, reason: String) -> CoreError {
        CoreError::InvalidAction {
            env: NAME.into(),
            state: s.to_vec(),
            action,
            reason,
        }
    }
}

impl Environment for Bitseq {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        self.shape.initial(out);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.rows("states of forward_masks", states)?;
        let (w, na, base) = (self.shape.width(), self.spec.num_actions, self.shape.base);
        self.spec
            .check_len("forward mask buffer", rows, na, out.len())?;
        let empty = self.shape.empty();
        for (s, m) in states.chunks_exact(w).zip(out.chunks_exact_mut(na)) {
            self.shape.check_row(s)?;
            m[..base].fill(false);
            for (p, &t) in s.iter().enumerate().skip(1) {
                m[p * base..(p + 1) * base].fill(t == empty);
            }
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.rows("states of backward_masks", states)?;
        let w = self.shape.width();
        self.spec
            .check_len("backward mask buffer", rows, w, out.len())?;
        let empty = self.shape.empty();
        for (s, m) in states.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
            self.shape.check_row(s)?;
            m[0] = false;
            for (mp, &t) in m[1..].iter_mut().zip(&s[1..]) {
                *mp = t != empty;
            }
        }
        Ok(())
    }

    fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        backward_actions: &mut [u32],
    ) -> Result<()> {
        let w = self.shape.width();
        let rows = self.rows("states of step", states)?;
        self.spec
            .check_len("actions of step", rows, 1, actions.len())?;
        self.spec
            .check_len("next-state buffer of step", rows, w, next.len())?;
        self.spec.check_len(
            "backward-action buffer of step",
            rows,
            1,
            backward_actions.len(),
        )?;
        let na = self.spec.num_actions;
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * w..(r + 1) * w];
            self.shape.check_row(s)?;
            let (p, word) = self.position_and_word(a);
            let reason = if a as usize >= na {
                Some(format!(
                    "forward actions are 0..{na} (position * 2^k + word)"
                ))
            } else if p == 0 {
                Some("position 0 holds BOS and is never written".into())
            } else if s[p] != self.shape.empty() {
                Some(format!("position {p} already holds word {}", s[p]))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(self.invalid_action(s, a, reason));
            }
            let o = &mut next[r * w..(r + 1) * w];
            o.copy_from_slice(s);
            o[p] = word as StateValue;
            backward_actions[r] = p as u32;
        }
        Ok(())
    }

    fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> Result<()> {
        let w = self.shape.width();
        let rows = self.rows("states of backward_step", states)?;
        self.spec.check_len(
            "backward actions of backward_step",
            rows,
            1,
            backward_actions.len(),
        )?;
        self.spec
            .check_len("parent buffer of backward_step", rows, w, prev.len())?;
        self.spec.check_len(
            "forward-action buffer of backward_step",
            rows,
            1,
            forward_actions.len(),
        )?;
        for (r, &b) in backward_actions.iter().enumerate() {
            let s = &states[r * w..(r + 1) * w];
            self.shape.check_row(s)?;
            let p = b as usize;
            let reason = if p >= w {
                Some(format!("backward actions are positions 0..{w}"))
            } else if p == 0 {
                Some("position 0 holds BOS and is never cleared".into())
            } else if s[p] == self.shape.empty() {
                Some(format!("position {p} is EMPTY: there is no word to clear"))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(self.invalid_action(s, b, reason));
            }
            let o = &mut prev[r * w..(r + 1) * w];
            o.copy_from_slice(s);
            o[p] = self.shape.empty();
            forward_actions[r] = self.action(p, s[p] as u32);
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let rows = self.rows("states of log_reward", states)?;
        self.spec
            .check_len("log-reward buffer", rows, 1, out.len())?;
        let beta = self.config.beta;
        for (s, o) in states.chunks_exact(self.shape.width()).zip(out.iter_mut()) {
            let words = self.shape.complete_words(s, "log_reward")?;
            *o = -beta * f64::from(self.modes.min_distance(words));
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        let rows = self.rows("states of encode", states)?;
        let f = self.spec.feature_dim;
        self.spec.check_len("feature buffer", rows, f, out.len())?;
        out.fill(0.0);
        let vocab = self.shape.base + 2;
        for (s, o) in states
            .chunks_exact(self.shape.width())
            .zip(out.chunks_exact_mut(f))
        {
            self.shape.check_row(s)?;
            for (p, &t) in s.iter().enumerate() {
                o[p * vocab + t as usize] = 1.0;
            }
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        self.num_states.map(|_| self as &dyn Enumerable)
    }

    /// BOS plus `n/k` slots, each a one-hot over `2^k + 2` token values; forward action
    /// `position * 2^k + word`, backward action `position`.
    fn sequence_layout(&self) -> Option<SequenceLayout> {
        Some(SequenceLayout {
            tokens: self.shape.l + 1,
            token_features: self.shape.base + 2,
            forward: TokenActions::TokenWord {
                words: self.shape.base,
            },
            backward: TokenActions::Token,
        })
    }

    /// A [`BitseqMonitor`]: `modes_found` and `spearman` in every evaluation record.
    fn monitor(&self) -> Option<Box<dyn Monitor>> {
        Some(Box::new(BitseqMonitor::new(self)))
    }

    fn as_readable(&self) -> Option<&dyn Readable> {
        Some(self)
    }
}

/// The bit string ([`Bitseq::bit_string`]): `0110`, with `-` for the bits of unwritten words.
impl Readable for Bitseq {
    fn readable(&self, state: &[StateValue]) -> Result<String> {
        self.bit_string(state)
    }
}

impl Enumerable for Bitseq {
    fn num_states(&self) -> u64 {
        self.num_states.unwrap_or(u64::MAX)
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let rows = self.rows("states of state_index", states)?;
        self.spec.check_len("index buffer", rows, 1, out.len())?;
        if self.num_states.is_none() {
            return Err(CoreError::Unsupported {
                env: NAME.into(),
                capability: format!(
                    "enumeration ((2^k + 1)^(n/k) states exceed {MAX_ENUMERABLE_STATES})"
                ),
            });
        }
        let radix = self.shape.base as u64 + 1;
        let empty = self.shape.empty();
        for (s, o) in states.chunks_exact(self.shape.width()).zip(out.iter_mut()) {
            self.shape.check_row(s)?;
            // Fits: every digit < radix and radix^(n/k) <= MAX_ENUMERABLE_STATES.
            *o = s[1..].iter().rev().fold(0u64, |acc, &t| {
                acc * radix + if t == empty { 0 } else { t as u64 + 1 }
            });
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let w = self.shape.width();
        self.spec.check_len(
            "state buffer of states_from_index",
            indices.len(),
            w,
            out.len(),
        )?;
        let Some(total) = self.num_states else {
            return Err(CoreError::Unsupported {
                env: NAME.into(),
                capability: format!(
                    "enumeration ((2^k + 1)^(n/k) states exceed {MAX_ENUMERABLE_STATES})"
                ),
            });
        };
        let radix = self.shape.base as u64 + 1;
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(w)) {
            if i >= total {
                return Err(CoreError::InvalidState {
                    env: NAME.into(),
                    state: vec![],
                    reason: format!("index {i} is outside 0..{total}"),
                });
            }
            row[0] = self.shape.bos();
            let mut x = i;
            for t in row[1..].iter_mut() {
                let d = x % radix;
                *t = if d == 0 {
                    self.shape.empty()
                } else {
                    (d - 1) as StateValue
                };
                x /= radix;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use softgfn_core::EnvironmentExt;

    fn small(n: usize, k: usize) -> Bitseq {
        Bitseq::new(BitseqConfig {
            n,
            k,
            num_modes: 2,
            block_len: 4,
            alphabet: vec!["0000".into(), "1111".into()],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn readable_form_is_the_bit_string() {
        let env = small(8, 2);
        let r = env.as_readable().unwrap();
        let s0 = env.initial_row();
        assert_eq!(r.readable(&s0).unwrap(), "--------");
        // Word 2 (binary 10) at position 2 (bits 2..4).
        let s = env.step_one(&s0, 2 * 4 + 2).unwrap().0;
        assert_eq!(r.readable(&s).unwrap(), "--10----");
        assert!(r.readable(&s[1..]).is_err());
    }

    fn field_of(config: BitseqConfig) -> String {
        match Bitseq::new(config) {
            Err(CoreError::InvalidParameter { field, .. }) => field,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let d = BitseqConfig::default;
        let cases: Vec<(BitseqConfig, &str)> = vec![
            (BitseqConfig { k: 7, ..d() }, "k"),
            (BitseqConfig { k: 0, ..d() }, "k"),
            (
                BitseqConfig {
                    n: 17 * 2,
                    k: 17,
                    block_len: 2,
                    ..d()
                },
                "k",
            ),
            (BitseqConfig { n: 0, ..d() }, "n"),
            (
                BitseqConfig {
                    n: 1 << 20,
                    k: 16,
                    block_len: 8,
                    ..d()
                },
                "n",
            ),
            (
                BitseqConfig {
                    block_len: 7,
                    ..d()
                },
                "block_len",
            ),
            (
                BitseqConfig {
                    block_len: 0,
                    ..d()
                },
                "block_len",
            ),
            (
                BitseqConfig {
                    alphabet: vec!["0000".into()],
                    ..d()
                },
                "alphabet",
            ),
            (
                BitseqConfig {
                    alphabet: vec!["0000000x".into()],
                    ..d()
                },
                "alphabet",
            ),
            (
                BitseqConfig {
                    alphabet: vec![],
                    ..d()
                },
                "alphabet",
            ),
            (BitseqConfig { beta: 0.0, ..d() }, "beta"),
            (BitseqConfig { beta: -2.0, ..d() }, "beta"),
            (
                BitseqConfig {
                    beta: f64::NAN,
                    ..d()
                },
                "beta",
            ),
            (
                BitseqConfig {
                    beta: f64::INFINITY,
                    ..d()
                },
                "beta",
            ),
            (
                BitseqConfig {
                    num_modes: 0,
                    ..d()
                },
                "num_modes",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(config.clone()), field, "{config:?}");
        }
        // The message names the field, the value and the range.
        let e = Bitseq::new(BitseqConfig { k: 7, ..d() })
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "bitseq: invalid parameter `k` = 7: expected a divisor of n = 120 (the string is \
             split into n/k words)"
        );
        let e = Bitseq::new(BitseqConfig {
            alphabet: vec!["00000000".into(), "0011".into()],
            ..d()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"0011\" (entry 1)") && e.contains("block_len = 8"),
            "{e}"
        );
        // Unknown keys and wrong types come from the parser.
        let e = Bitseq::from_params(&serde_json::json!({"beta": "two"})).unwrap_err();
        assert!(e.to_string().contains("bad parameters"), "{e}");
        // Every k dividing n works, the paper's set included.
        for k in [1, 2, 3, 4, 5, 6, 8, 10, 12] {
            let env = Bitseq::new(BitseqConfig { k, ..d() }).unwrap();
            assert_eq!(env.spec().max_trajectory_length, 120 / k);
        }
    }

    #[test]
    fn steps_masks_and_their_inverses() {
        let env = small(8, 2);
        let s0 = env.initial_row();
        assert_eq!(s0, [5, 4, 4, 4, 4]);
        assert_eq!(env.bit_string(&s0).unwrap(), "--------");
        // Write word 0b10 at position 3: action 3 * 4 + 2.
        let (s1, b) = env.step_one(&s0, 14).unwrap();
        assert_eq!((s1.clone(), b), (vec![5, 4, 4, 2, 4], 3));
        assert_eq!(env.bit_string(&s1).unwrap(), "----10--");
        assert_eq!(env.position_and_word(14), (3, 2));
        let m = env.forward_mask_of(&s1).unwrap();
        for (a, &v) in m.iter().enumerate() {
            let p = a / 4;
            assert_eq!(v, p != 0 && p != 3, "action {a}");
        }
        assert_eq!(
            env.backward_mask_of(&s1).unwrap(),
            [false, false, false, true, false]
        );
        assert_eq!(env.backward_step_one(&s1, 3).unwrap(), (s0.clone(), 14));
        // Invalid forward actions: BOS position, filled position, out of range.
        for a in [0, 3, 13, 15, 20, 1000] {
            assert!(env.step_one(&s1, a).is_err(), "action {a}");
        }
        // Invalid backward actions: BOS, empty positions, out of range.
        for b in [0, 1, 2, 4, 5] {
            assert!(
                env.backward_step_one(&s1, b).is_err(),
                "backward action {b}"
            );
        }
        // A full string has no valid action (implicit end) and a finite reward.
        let full = env.state_from_bit_string("00001111").unwrap();
        assert_eq!(full, [5, 0, 0, 3, 3]);
        assert!(!env.forward_mask_of(&full).unwrap().iter().any(|&v| v));
        assert!(env.is_terminal_state(&full).unwrap());
        assert!(env.log_reward_of(&full).unwrap().is_finite());
        assert!(
            env.log_reward_of(&s1).is_err(),
            "partial strings have no reward"
        );
        assert_eq!(env.bits_of(&full).unwrap(), [0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(env.state_of_bits(&[0, 0, 0, 0, 1, 1, 1, 1]).unwrap(), full);
    }

    #[test]
    fn bad_rows_and_buffers_are_errors() {
        let env = small(8, 2);
        let mut m = vec![false; 20];
        for bad in [[4, 4, 4, 4, 4], [5, 4, 4, 4, 6], [5, -1, 4, 4, 4]] {
            let e = env.forward_masks(&bad, &mut m).unwrap_err().to_string();
            assert!(e.contains("invalid state"), "{bad:?}: {e}");
        }
        assert!(env.forward_masks(&[5, 4, 4, 4], &mut m).is_err());
        assert!(env.forward_masks(&[5, 4, 4, 4, 4], &mut m[..19]).is_err());
        assert!(env.backward_masks(&[5, 4, 4, 4, 4], &mut m[..4]).is_err());
        assert!(env.encode(&[5, 4, 4, 4, 4], &mut [0.0; 29]).is_err());
        assert!(env.log_reward(&[5, 0, 0, 0, 0], &mut [0.0; 2]).is_err());
        let mut next = [0; 5];
        assert!(
            env.step(&[5, 4, 4, 4, 4], &[4, 5], &mut next, &mut [0])
                .is_err()
        );
        assert!(env.state_from_bit_string("0-010000").is_err());
        assert!(env.state_from_bit_string("0000000").is_err());
        assert!(env.state_of_bits(&[2; 8]).is_err());
    }

    #[test]
    fn features_are_one_hot_tokens() {
        let env = small(8, 2);
        assert_eq!(env.spec().feature_dim, 5 * 6);
        let s = env.state_from_bit_string("--11----").unwrap();
        let mut f = vec![0.0; 30];
        env.encode(&s, &mut f).unwrap();
        let mut want = vec![0.0; 30];
        for (p, t) in [(0, 5), (1, 4), (2, 3), (3, 4), (4, 4)] {
            want[p * 6 + t] = 1.0;
        }
        assert_eq!(f, want);
    }

    #[test]
    fn indices_are_a_bijection_with_s0_at_zero() {
        let env = small(8, 2);
        let en = env.as_enumerable().unwrap();
        assert_eq!(en.num_states(), 625);
        let idx: Vec<u64> = (0..625).collect();
        let mut rows = vec![0; 625 * 5];
        en.states_from_index(&idx, &mut rows).unwrap();
        let mut back = vec![0u64; 625];
        en.state_index(&rows, &mut back).unwrap();
        assert_eq!(back, idx);
        assert_eq!(&rows[..5], env.initial_row().as_slice());
        // Position 1 is the least significant digit; word w is digit w + 1.
        let mut i = [0u64];
        en.state_index(&[5, 2, 4, 4, 0], &mut i).unwrap();
        assert_eq!(i[0], 3 + 125);
        assert!(en.states_from_index(&[625], &mut [0; 5]).is_err());
        // Too many states: not enumerable, and the index calls say so.
        let big = Bitseq::new(BitseqConfig::default()).unwrap();
        assert!(big.as_enumerable().is_none());
        assert!(big.state_index(&big.initial_row(), &mut [0]).is_err());
        // 17^10 = 2^40.9 > 2^40, 17^9 < 2^40.
        let at = |n| {
            Bitseq::new(BitseqConfig {
                n,
                k: 4,
                block_len: 4,
                alphabet: vec!["0000".into()],
                ..Default::default()
            })
            .unwrap()
        };
        assert!(at(40).as_enumerable().is_none());
        assert_eq!(at(36).as_enumerable().unwrap().num_states(), 17u64.pow(9));
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn sequence_layout_matches_the_spec_and_the_encoding() {
        let env = Bitseq::new(BitseqConfig {
            n: 8,
            k: 2,
            block_len: 4,
            alphabet: vec!["0000".into(), "1111".into()],
            num_modes: 2,
            ..Default::default()
        })
        .unwrap();
        let layout = env.sequence_layout().unwrap();
        layout.validate(env.spec()).unwrap();
        assert_eq!(layout.tokens, 5);
        assert_eq!(layout.token_features, 6);
        assert_eq!(layout.forward, TokenActions::TokenWord { words: 4 });
        // Action `position * 2^k + word` is token `position`, word `word`.
        assert_eq!(env.action(3, 2), 3 * 4 + 2);
        let big = Bitseq::new(BitseqConfig::default()).unwrap();
        big.sequence_layout().unwrap().validate(big.spec()).unwrap();
    }
}
