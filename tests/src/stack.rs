//! The stack under test: a real Redis, app replicas named `replica-1..` and a balancer in front of them,
//! as the fault suites and the browser tests run it.

use shared::sync::lock;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{App, Balancer, RedisServer};

/// How long a replica keeps serving after SIGTERM before it closes idle connections: longer than the
/// balancer's health interval in the fault tests, so the balancer has taken it out by then (as in Compose).
pub const REPLICA_SHUTDOWN_DELAY: &str = "1s";

/// A running stack; `apps[i]` is `replica-{i+1}`.
pub struct Stack {
    pub redis: RedisServer,
    pub apps: Vec<App>,
    pub balancer: Balancer,
}

/// How to start a [`Stack`].
pub struct StackBuilder {
    replicas: usize,
    spare_ports: Vec<u16>,
    app_env: Vec<(String, String)>,
    balancer_args: Vec<String>,
    warm_up: bool,
}

impl StackBuilder {
    /// Extra upstream addresses where nothing listens yet (ports a replica may later be started on,
    /// which the balancer already knows of).
    pub fn spare_ports(mut self, ports: &[u16]) -> Self {
        self.spare_ports.extend_from_slice(ports);
        self
    }

    /// An environment variable for every replica.
    pub fn app_env(mut self, key: &str, value: &str) -> Self {
        self.app_env.push((key.to_string(), value.to_string()));
        self
    }

    /// Flags for the balancer (e.g. short health intervals for the test).
    pub fn balancer_args(mut self, args: &[&str]) -> Self {
        self.balancer_args
            .extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Before returning, send fresh requests (`/about`) through the balancer until every replica has
    /// served one (within 10 s). Off by default: those requests show in the balancer's counts.
    pub fn warm_up(mut self) -> Self {
        self.warm_up = true;
        self
    }

    pub async fn start(self) -> Stack {
        let redis = RedisServer::start().await;
        let mut apps = Vec::new();
        for i in 1..=self.replicas {
            let builder = App::builder(&redis).name(&format!("replica-{i}"));
            let builder = self.app_env.iter().fold(builder, |b, (k, v)| b.env(k, v));
            apps.push(builder.start().await);
        }
        let upstreams: Vec<String> = apps
            .iter()
            .map(|a| a.addr().to_string())
            .chain(self.spare_ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .collect();
        let args: Vec<&str> = self.balancer_args.iter().map(String::as_str).collect();
        let balancer = Balancer::builder()
            .upstreams(&upstreams.join(","))
            .args(&args)
            .start()
            .await;
        let stack = Stack {
            redis,
            apps,
            balancer,
        };
        if self.warm_up {
            stack.wait_all_healthy(Duration::from_secs(10)).await;
        }
        stack
    }
}

impl Stack {
    pub fn builder(replicas: usize) -> StackBuilder {
        StackBuilder {
            replicas,
            spare_ports: Vec::new(),
            app_env: Vec::new(),
            balancer_args: Vec::new(),
            warm_up: false,
        }
    }

    /// The fault suites' stack: replicas that delay their shutdown by [`REPLICA_SHUTDOWN_DELAY`], the
    /// balancer started with `balancer_args`, warmed up.
    pub async fn start(replicas: usize, balancer_args: &[&str]) -> Stack {
        Stack::start_with_spares(replicas, &[], balancer_args).await
    }

    /// Like [`Stack::start`], with spare upstream ports (see [`StackBuilder::spare_ports`]).
    pub async fn start_with_spares(
        replicas: usize,
        spare_ports: &[u16],
        balancer_args: &[&str],
    ) -> Stack {
        Stack::builder(replicas)
            .spare_ports(spare_ports)
            .app_env("SHUTDOWN_DELAY", REPLICA_SHUTDOWN_DELAY)
            .balancer_args(balancer_args)
            .warm_up()
            .start()
            .await
    }

    /// Waits until a run of fresh requests through the balancer has reached every replica.
    pub async fn wait_all_healthy(&self, timeout: Duration) {
        let names: Vec<String> = self.apps.iter().map(|a| a.name().to_string()).collect();
        let url = self.balancer.url("/about");
        let seen: Arc<Mutex<HashSet<String>>> = Default::default();
        let ok = crate::wait_until_async(timeout, || {
            let url = url.clone();
            let seen = seen.clone();
            let names = names.clone();
            async move {
                if let Ok(resp) = crate::http::get(&url).await {
                    if let Some(name) = resp.header("x-served-by") {
                        lock(&seen).insert(name.to_string());
                    }
                }
                let seen = lock(&seen);
                names.iter().all(|n| seen.contains(n))
            }
        })
        .await;
        assert!(
            ok,
            "not every replica served through the balancer within {timeout:?}"
        );
    }

    pub fn replica_addrs(&self) -> Vec<SocketAddr> {
        self.apps.iter().map(|a| a.addr()).collect()
    }

    pub fn balancer_origin(&self) -> String {
        format!("http://{}", self.balancer.addr())
    }

    pub fn admin_origin(&self) -> String {
        format!("http://{}", self.balancer.admin_addr())
    }
}
