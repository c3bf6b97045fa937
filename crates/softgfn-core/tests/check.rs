//! `check_env` passes on correct environments and names the violated property otherwise.

use softgfn_core::testing::{Breakage, BrokenEnv, SetEnv, SlotEnv};
use softgfn_core::{CoreError, check_env};

#[test]
fn correct_environments_pass() {
    let r = check_env(&SetEnv::new(vec![0.1, 0.2, 0.3, 0.4])).unwrap();
    assert!(r.exhaustive);
    assert_eq!(r.states_checked, 16);
    assert!(r.transitions_checked > 0);
    check_env(&SlotEnv::new(vec![0.1, 0.2, 0.3])).unwrap();
}

fn violated(b: Breakage) -> &'static str {
    match check_env(&BrokenEnv::new(b)) {
        Err(CoreError::CheckFailed {
            property, details, ..
        }) => {
            assert!(!details.is_empty());
            property
        }
        other => panic!("{b:?}: expected a check failure, got {other:?}"),
    }
}

#[test]
fn broken_environments_fail_with_the_violated_property() {
    assert_eq!(
        violated(Breakage::WrongInverse),
        "backward_step inverts step"
    );
    assert_eq!(violated(Breakage::LooseBackwardMask), "mask consistency");
    assert_eq!(violated(Breakage::NanReward), "finite rewards");
    assert_eq!(violated(Breakage::ShortLengthBound), "length bound");
    assert_eq!(
        violated(Breakage::InitialHasParent),
        "initial state has no parents"
    );
    assert_eq!(violated(Breakage::TightBackwardMask), "mask consistency");
}

#[test]
fn failure_message_names_the_property() {
    let e = check_env(&BrokenEnv::new(Breakage::NanReward)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("finite rewards"), "{msg}");
    assert!(msg.contains("NaN"), "{msg}");
}
