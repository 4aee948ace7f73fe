//! The flags of `cargo xtask bench` checked into a [`Plan`]: rounds, durations, concurrencies,
//! replica counts, the fixed-rate fraction and the paths, with the quick (CI) and full defaults
//! filled in. The loopback runner measures this plan; the Compose runner starts from it and
//! drops what a Compose stack cannot do, so both read the same flags the same way.

use std::time::Duration;

use anyhow::Result;

use super::BenchArgs;
use crate::config_error::config_error;
use crate::report::model::{FixedRatePlan, Plan, StackKind};

/// The loopback plan of `args`: every flag checked, the quick and full defaults filled in.
pub fn plan(args: &BenchArgs) -> Result<Plan> {
    let quick = args.quick;
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 3 });
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(if quick { 1 } else { 4 }));
    let pick = |given: &Option<Vec<usize>>, quick_default: &[usize], full: &[usize]| {
        given
            .clone()
            .unwrap_or_else(|| if quick { quick_default } else { full }.to_vec())
    };
    let concurrency = pick(&args.concurrency, &[16, 256], &[16, 64, 256]);
    let replica_sweep = pick(&args.replica_sweep, &[1, 2], &[1, 2, 3, 4]);
    if rounds == 0 {
        return Err(config_error("--rounds must be at least 1"));
    }
    if concurrency.is_empty() || concurrency.contains(&0) || args.sweep_concurrency == 0 {
        return Err(config_error(
            "--concurrency and --sweep-concurrency must be positive",
        ));
    }
    if args.replicas == 0 || replica_sweep.contains(&0) {
        return Err(config_error(
            "--replicas and --replica-sweep must be at least 1",
        ));
    }
    if !(0.0..1.0).contains(&args.fixed_rate_fraction) {
        return Err(config_error(
            "--fixed-rate-fraction must be at least 0 and below 1",
        ));
    }
    if !args.static_path.starts_with('/') {
        return Err(config_error("--static-path must start with '/'"));
    }
    Ok(Plan {
        stack: StackKind::Loopback,
        quick,
        rounds,
        duration_ms: duration.as_millis(),
        warmup_ms: if quick { 300 } else { 700 },
        concurrency,
        replicas: args.replicas,
        replica_sweep,
        sweep_concurrency: args.sweep_concurrency,
        fixed_rate: (args.fixed_rate_fraction > 0.0).then_some(FixedRatePlan {
            concurrency: 64,
            fraction_of_nginx_max: args.fixed_rate_fraction,
        }),
        static_path: args.static_path.clone(),
        counter_key: args.counter_key.clone(),
        balancer_request_log: Some(args.balancer_request_log),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::parse_args;

    #[test]
    fn bad_plans_are_rejected() {
        let args = || parse_args(&["bench", "--no-build"]).unwrap();
        let mut a = args();
        a.rounds = Some(0);
        assert!(plan(&a).is_err());
        let mut a = args();
        a.static_path = "static/style.css".into();
        assert!(plan(&a).is_err());
        let mut a = args();
        a.concurrency = Some(vec![0]);
        assert!(plan(&a).is_err());
    }
}
