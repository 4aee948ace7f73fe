//! When a test cannot run its real check (no `unshare`, no `ip netns`, not root), it fails: a green run must
//! mean every check ran. Only when the person running the tests asks for skips (`E2E_ALLOW_SKIP=1`) does such
//! a test print one `SKIP: <reason>` line and pass. Every place that may skip goes through [`or_fail`], so
//! the rule is written once; nextest shows these tests' output even when they pass (`.config/nextest.toml`),
//! so a skip is never silent.

use std::ffi::OsStr;

/// The variable that turns "cannot run the check" from a failure into a skip.
pub const ALLOW_SKIP: &str = "E2E_ALLOW_SKIP";

/// Called where a test cannot run its real check, with `reason` saying what is missing and how to get it.
/// Panics with one line naming the reason and [`ALLOW_SKIP`], unless `E2E_ALLOW_SKIP=1` is set: then it
/// prints `SKIP: <reason>` to stderr and returns, and the caller returns from the test.
#[track_caller]
pub fn or_fail(reason: &str) {
    match verdict(reason, std::env::var_os(ALLOW_SKIP).as_deref()) {
        Ok(line) => eprintln!("{line}"),
        Err(line) => panic!("{line}"),
    }
}

/// `Ok(the SKIP line)` when skipping is allowed (`allow` is `1`), else `Err(the failure line)`.
fn verdict(reason: &str, allow: Option<&OsStr>) -> Result<String, String> {
    if allow == Some(OsStr::new("1")) {
        Ok(format!("SKIP: {reason}"))
    } else {
        Err(format!(
            "{reason}; or set {ALLOW_SKIP}=1 to let this test skip"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prerequisite_fails_unless_skips_are_allowed() {
        let reason = "cannot make a network namespace: ip netns add failed";
        for unset_or_other in [None, Some(OsStr::new("")), Some(OsStr::new("0"))] {
            let line = verdict(reason, unset_or_other).unwrap_err();
            assert_eq!(
                line,
                format!("{reason}; or set E2E_ALLOW_SKIP=1 to let this test skip")
            );
        }
        assert_eq!(
            verdict(reason, Some(OsStr::new("1"))),
            Ok(format!("SKIP: {reason}"))
        );
    }
}
