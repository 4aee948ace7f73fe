//! systemd socket activation: the listening sockets systemd passes (`LISTEN_FDS` descriptors from
//! fd 3, named by `LISTEN_FDNAMES` after the flags: `listen`, `tls-listen`, `admin-listen`), for
//! this process only (`LISTEN_PID`). With `balancer.socket` owning the ports, a restart of the
//! service refuses no connection: they wait in the socket's queue until the new process accepts.

use std::os::fd::OwnedFd;

use crate::handover::protocol::Name;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// What systemd said, from the three variables (pure).
#[derive(Debug, PartialEq, Eq)]
pub struct Passed {
    /// The fd number of each named socket.
    pub sockets: Vec<(Name, i32)>,
}

/// Reads the variables: `Ok(None)` when they are not for this process (unset, or `LISTEN_PID`
/// another's); `Err` names what is wrong.
pub fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    own_pid: u32,
) -> Result<Option<Passed>, String> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(own_pid) {
        return Ok(None);
    }
    let count: i32 = match fds.trim().parse() {
        Ok(n) if (1..=16).contains(&n) => n,
        _ => return Err(format!("LISTEN_FDS={fds:?}: expected 1 to 16 sockets")),
    };
    let names: Vec<&str> = names.map_or_else(Vec::new, |n| n.split(':').collect());
    let mut sockets = Vec::new();
    for index in 0..count {
        let given = names
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .copied();
        let name = match given {
            Some("listen") => Name::Listen,
            Some("tls-listen") => Name::TlsListen,
            Some("admin-listen") => Name::AdminListen,
            // One unnamed socket: the public listener.
            None | Some("unknown") | Some("") if count == 1 => Name::Listen,
            other => {
                return Err(format!(
                    "LISTEN_FDNAMES: socket {} is named {other:?}; name each one \
                     listen, tls-listen or admin-listen (FileDescriptorName=)",
                    index + 1
                ))
            }
        };
        sockets.push((name, FIRST_FD + index));
    }
    Ok(Some(Passed { sockets }))
}

/// The sockets systemd passed to this process, by name; `Err` is the line to exit 2 with.
pub fn inherited() -> Result<Vec<(Name, OwnedFd)>, String> {
    let var = |name: &str| std::env::var(name).ok();
    let passed = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    let Some(passed) = passed else {
        return Ok(Vec::new());
    };
    Ok(passed
        .sockets
        .into_iter()
        .map(|(name, fd)| (name, take(fd)))
        .collect())
}

/// Takes ownership of descriptor `fd`, which systemd passed.
#[allow(unsafe_code)]
fn take(fd: i32) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the socket-activation protocol gives this process descriptors FIRST_FD to
    // FIRST_FD + LISTEN_FDS - 1 (LISTEN_PID is checked to be ours), nothing else in the process
    // opened or owns them, and each is taken exactly once, here, at start.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_sockets_for_this_process_are_read_others_ignored() {
        let got = parse(Some("42"), Some("2"), Some("listen:admin-listen"), 42);
        let want = vec![(Name::Listen, 3), (Name::AdminListen, 4)];
        assert_eq!(got, Ok(Some(Passed { sockets: want })));
        assert_eq!(
            parse(Some("41"), Some("2"), None, 42),
            Ok(None),
            "another pid's"
        );
        assert_eq!(parse(None, None, None, 42), Ok(None));
        let one = parse(Some("42"), Some("1"), None, 42);
        assert_eq!(
            one,
            Ok(Some(Passed {
                sockets: vec![(Name::Listen, 3)]
            }))
        );
    }

    #[test]
    fn bad_counts_and_names_are_refused() {
        assert!(parse(Some("42"), Some("0"), None, 42).is_err());
        assert!(parse(Some("42"), Some("x"), None, 42).is_err());
        assert!(parse(Some("42"), Some("2"), Some("listen:web"), 42).is_err());
        assert!(
            parse(Some("42"), Some("2"), None, 42).is_err(),
            "two unnamed"
        );
    }
}
