//! The mode set (reproducible from `mode_seed`, made of alphabet blocks), the Spearman test set,
//! and the "modes found" tracker.

use softgfn_bitseq::{Bitseq, BitseqConfig, DEFAULT_ALPHABET, ModeSet, ModeTracker, modes_found};
use softgfn_core::EnvironmentExt;
use softgfn_core::rng::{Stream, stream};

fn hamming(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

fn small_config(seed: u64) -> BitseqConfig {
    BitseqConfig {
        n: 12,
        k: 3,
        num_modes: 5,
        block_len: 4,
        alphabet: ["0000", "1111", "1100", "0011"].map(String::from).to_vec(),
        mode_seed: seed,
        mode_threshold: 2,
        ..Default::default()
    }
}

fn blocks_are_from_alphabet(modes: &ModeSet, block_len: usize, alphabet: &[&str]) {
    for i in 0..modes.len() {
        let bits = modes.bits(i);
        assert_eq!(bits.len(), modes.n());
        for block in bits.chunks(block_len) {
            let text: String = block.iter().map(|&b| char::from(b'0' + b)).collect();
            assert!(alphabet.contains(&text.as_str()), "mode {i}: block {text}");
        }
    }
}

#[test]
fn modes_are_reproducible_and_depend_on_the_mode_seed() {
    let a = ModeSet::generate(&BitseqConfig::default()).unwrap();
    let b = ModeSet::generate(&BitseqConfig::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 60);
    assert_eq!((a.n(), a.k(), a.num_words()), (120, 8, 15));
    let c = ModeSet::generate(&BitseqConfig {
        mode_seed: 1,
        ..Default::default()
    })
    .unwrap();
    assert_ne!(a, c);
    // The modes are not all alike (the draws vary within one set too).
    assert!((1..a.len()).any(|i| a.words(i) != a.words(0)));
    blocks_are_from_alphabet(&a, 8, &DEFAULT_ALPHABET);
    blocks_are_from_alphabet(&c, 8, &DEFAULT_ALPHABET);
    // The environment uses exactly this mode set.
    let env = Bitseq::new(BitseqConfig::default()).unwrap();
    assert_eq!(env.modes(), &a);
}

#[test]
fn mode_generation_follows_the_documented_draws() {
    // Re-derive the first modes from the documented procedure: one `below(rng, |H|)` per block,
    // on stream(mode_seed, Environment).
    let config = BitseqConfig::default();
    let modes = ModeSet::generate(&config).unwrap();
    let mut rng = stream(config.mode_seed, Stream::Environment);
    for i in 0..3 {
        let mut text = String::new();
        for _ in 0..15 {
            let h = softgfn_core::rng::below(&mut rng, 5) as usize;
            text.push_str(DEFAULT_ALPHABET[h]);
        }
        let bits: Vec<u8> = text.bytes().map(|c| c - b'0').collect();
        assert_eq!(modes.bits(i), bits, "mode {i}");
    }
}

#[test]
fn small_instances_have_modes_of_alphabet_blocks() {
    for seed in [0, 1, 2] {
        let modes = ModeSet::generate(&small_config(seed)).unwrap();
        assert_eq!(modes.len(), 5);
        blocks_are_from_alphabet(&modes, 4, &["0000", "1111", "1100", "0011"]);
    }
    let env = Bitseq::new(small_config(0)).unwrap();
    // A mode's reward is the largest; one flipped bit costs beta.
    let m = env.modes().state_row(0);
    assert_eq!(env.log_reward_of(&m).unwrap(), 0.0);
    let mut bits = env.modes().bits(0);
    bits[5] ^= 1;
    let x = env.state_of_bits(&bits).unwrap();
    let lr = env.log_reward_of(&x).unwrap();
    let min = (0..env.modes().len())
        .map(|i| hamming(&env.modes().bits(i), &bits))
        .min()
        .unwrap();
    assert_eq!(lr, -2.0 * min as f64);
    assert!(lr == 0.0 || lr == -2.0);
}

#[test]
fn test_set_has_one_string_per_mode_and_flip_count() {
    let env = Bitseq::new(BitseqConfig::default()).unwrap();
    let ts = env.test_set();
    assert_eq!(ts.len(), 7_200);
    assert_eq!(ts.width, 16);
    assert_eq!(ts.states.len(), 7_200 * 16);
    for i in 0..ts.len() {
        let (m, c) = (ts.mode[i] as usize, ts.flips[i] as usize);
        assert_eq!((m, c), (i / 120, i % 120), "entry {i}");
        let bits = env.bits_of(ts.row(i)).unwrap();
        assert_eq!(hamming(&bits, &env.modes().bits(m)), c, "entry {i}");
    }
    // Seeded: the same instance gives the same test set, another mode seed another one.
    assert_eq!(env.test_set(), ts);
    let other = Bitseq::new(BitseqConfig {
        mode_seed: 3,
        ..Default::default()
    })
    .unwrap();
    assert_ne!(other.test_set().states, ts.states);
    // Flipped bits are random: two copies with the same count differ somewhere.
    let mut rng = stream(99, Stream::Eval);
    let again = env.modes().test_set(&mut rng);
    assert_ne!(again.states, ts.states);
    assert_eq!(again.flips, ts.flips);

    let small = Bitseq::new(small_config(0)).unwrap();
    let ts = small.test_set();
    assert_eq!(ts.len(), 12 * 5);
    for i in 0..ts.len() {
        let bits = small.bits_of(ts.row(i)).unwrap();
        let mode = small.modes().bits(ts.mode[i] as usize);
        assert_eq!(hamming(&bits, &mode), ts.flips[i] as usize);
    }
}

/// Modes `00000000`, `11111111`, `11110000` in words of 4 bits.
fn hand_made() -> (Bitseq, ModeSet) {
    let env = Bitseq::new(BitseqConfig {
        n: 8,
        k: 4,
        block_len: 8,
        ..Default::default()
    })
    .unwrap();
    let bits = |s: &str| s.bytes().map(|c| c - b'0').collect::<Vec<u8>>();
    let modes = ModeSet::from_bits(
        8,
        4,
        &[bits("00000000"), bits("11111111"), bits("11110000")],
    )
    .unwrap();
    (env, modes)
}

#[test]
fn mode_tracker_counts_each_mode_once_within_the_threshold() {
    let (env, modes) = hand_made();
    let row = |s: &str| env.state_from_bit_string(s).unwrap();
    let mut t = ModeTracker::new(modes.clone(), 2);
    assert_eq!((t.found(), t.num_modes(), t.threshold()), (0, 3, 2));
    // 00000011: distance 2 to 00000000 (found, at the threshold), 6 to the others.
    assert_eq!(t.observe(&row("00000011")).unwrap(), 1);
    assert_eq!(t.found_mask(), [true, false, false]);
    // 00000111 (distance 3 to mode 0, 5 to 11111111, 7 to 11110000): nothing new.
    assert_eq!(t.observe(&row("00000111")).unwrap(), 0);
    assert_eq!(t.found(), 1);
    // A batch of two: 11110001 finds 11110000 (distance 1) and 11111111 (distance 3: no);
    // 11111110 finds 11111111 (distance 1) and 11110000 (distance 3: no).
    let batch = [row("11110001"), row("11111110")].concat();
    assert_eq!(t.observe(&batch).unwrap(), 2);
    assert_eq!(t.found(), 3);
    assert_eq!(t.observed(), 4);
    // Cumulative: observing a mode again finds nothing new.
    assert_eq!(t.observe(&row("00000000")).unwrap(), 0);
    assert_eq!(t.found(), 3);

    // Threshold 0 needs exact hits; one string can find several modes at a wide threshold.
    assert_eq!(modes_found(&row("00000001"), &modes, 0).unwrap(), 0);
    assert_eq!(modes_found(&row("00000000"), &modes, 0).unwrap(), 1);
    assert_eq!(modes_found(&row("11110000"), &modes, 4).unwrap(), 3);
    assert_eq!(modes_found(&row("11110000"), &modes, 3).unwrap(), 1);
    assert_eq!(modes_found(&[], &modes, 3).unwrap(), 0);

    // Incomplete or malformed rows are errors, and the failed batch counts nothing.
    let mut t = ModeTracker::new(modes, 8);
    let bad = [row("00000000"), row("0000----")].concat();
    let e = t.observe(&bad).unwrap_err().to_string();
    assert!(e.contains("complete strings"), "{e}");
    assert_eq!((t.found(), t.observed()), (0, 0));
    assert!(t.observe(&row("00000000")[..2]).is_err());
}

#[test]
fn the_environment_tracker_uses_the_configured_threshold() {
    let env = Bitseq::new(small_config(4)).unwrap();
    let mut t = env.mode_tracker();
    assert_eq!(t.threshold(), 2);
    // Every mode of the test set finds itself; all modes at once.
    let ts = env.test_set();
    t.observe(&ts.states).unwrap();
    assert_eq!(t.found(), env.modes().len());
}

#[test]
fn hand_made_mode_sets_are_validated() {
    assert!(ModeSet::from_bits(8, 4, &[vec![0; 7]]).is_err());
    assert!(ModeSet::from_bits(8, 4, &[vec![2; 8]]).is_err());
    let e = ModeSet::from_bits(8, 3, &[vec![0; 8]]).unwrap_err();
    assert!(e.to_string().contains("`k`"), "{e}");
    let empty = ModeSet::from_bits(8, 4, &[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.min_distance(&[0, 0]), u32::MAX);
}
