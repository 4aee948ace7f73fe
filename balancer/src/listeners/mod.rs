//! Where the listening sockets come from, in one place: taken over from the balancer serving at
//! `--handover PATH`, else passed by systemd ([`systemd`]: socket activation), else bound here
//! from the flags (`--listen`, `--tls-listen`, `--admin-listen`). Whatever their origin, the
//! rest of the balancer serves the same [`Sockets`].

pub mod systemd;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::handover::giver::Offered;
use crate::handover::protocol::Name;
use crate::handover::taker::{self, Asked, Taking};

/// Every listening socket the balancer serves.
pub struct Sockets {
    pub public: TcpListener,
    pub tls: Option<TcpListener>,
    pub admin: TcpListener,
}

/// The sockets, and with `--handover` what the handover needs to go on once they serve.
pub struct Obtained {
    pub sockets: Sockets,
    pub handover: Option<Handover>,
}

/// `--handover`: the socket path, the handover received (finished once serving), and duplicates
/// of the sockets for the next one.
pub struct Handover {
    pub path: PathBuf,
    pub taking: Option<Taking>,
    pub offered: Arc<Offered>,
}

/// The sockets, however they come; `Err(2)` after one line naming the flag when they cannot.
pub async fn obtain(config: &Config) -> Result<Obtained, i32> {
    let mut received = Vec::new();
    let mut taking = None;
    if let Some(path) = &config.front.handover {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if !parent.unwrap_or(std::path::Path::new(".")).is_dir() {
            eprintln!(
                "balancer: --handover {}: its directory does not exist",
                path.display()
            );
            return Err(2);
        }
        let path = path.clone();
        let asked = tokio::task::spawn_blocking(move || taker::ask(&path)).await;
        match asked {
            Ok(Ok(Asked::Nobody)) => {}
            Ok(Ok(Asked::Taking(mut t))) => {
                received = std::mem::take(&mut t.listeners);
                taking = Some(t);
            }
            Ok(Err(line)) => {
                eprintln!("balancer: {line}");
                return Err(2);
            }
            Err(e) => {
                eprintln!("balancer: --handover: {e}");
                return Err(2);
            }
        }
    }
    // systemd's sockets are used whatever their address (the unit says where to listen); a
    // handed-over one only where the flag still points.
    let from_systemd = taking.is_none();
    if from_systemd {
        received = systemd::inherited().map_err(|line| {
            eprintln!("balancer: socket activation: {line}");
            2
        })?;
    }
    let mut take =
        |name: Name, addr: SocketAddr| take_or_bind(&mut received, name, addr, from_systemd);
    let public = take(Name::Listen, config.front.listen)?;
    let tls = match config.tls.tls_listen {
        Some(addr) => Some(take(Name::TlsListen, addr)?),
        None => None,
    };
    let admin = take(Name::AdminListen, config.admin.admin_listen)?;
    let sockets = Sockets { public, tls, admin };
    let handover = match &config.front.handover {
        Some(path) => Some(Handover {
            path: path.clone(),
            taking,
            offered: Offered::new(duplicates(&sockets).map_err(|e| {
                eprintln!("balancer: --handover: cannot duplicate the listeners: {e}");
                2
            })?),
        }),
        None => None,
    };
    Ok(Obtained { sockets, handover })
}

/// The socket `name` received for `addr`, or a new one bound there.
fn take_or_bind(
    received: &mut Vec<(Name, OwnedFd)>,
    name: Name,
    addr: SocketAddr,
    any_address: bool,
) -> Result<TcpListener, i32> {
    if let Some(at) = received.iter().position(|(n, _)| *n == name) {
        let (_, fd) = received.swap_remove(at);
        let listener = std::net::TcpListener::from(fd);
        match listener.local_addr() {
            Ok(local) if any_address || local == addr || addr.port() == 0 => {
                return into_tokio(listener, name, addr)
            }
            Ok(local) => tracing::warn!(
                flag = name.flag(),
                %local,
                %addr,
                "handover: the old balancer listened elsewhere; binding the new address"
            ),
            Err(e) => tracing::warn!(flag = name.flag(), error = %e, "handover: unusable socket"),
        }
    }
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        eprintln!("balancer: cannot listen on --{} {addr}: {e}", name.flag());
        2
    })?;
    into_tokio(listener, name, addr)
}

fn into_tokio(
    listener: std::net::TcpListener,
    name: Name,
    addr: SocketAddr,
) -> Result<TcpListener, i32> {
    listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
        .map_err(|e| {
            eprintln!("balancer: cannot listen on --{} {addr}: {e}", name.flag());
            2
        })
}

/// A duplicate of each socket, by name, to send to the next balancer.
fn duplicates(sockets: &Sockets) -> std::io::Result<Vec<(Name, OwnedFd)>> {
    let mut all = vec![(Name::Listen, sockets.public.as_fd().try_clone_to_owned()?)];
    if let Some(tls) = &sockets.tls {
        all.push((Name::TlsListen, tls.as_fd().try_clone_to_owned()?));
    }
    all.push((
        Name::AdminListen,
        sockets.admin.as_fd().try_clone_to_owned()?,
    ));
    Ok(all)
}
