//! The loopback plan as groups of runs: which front doors, paths, worker settings,
//! concurrencies and replica counts, in which order. A group is the proxies started once with one
//! configuration and the runs made against them; its size is what the time budget is checked on.

use crate::report::model::{Door, PathKind, Phase, Plan, Setting};

/// The groups of runs a loopback plan makes, in order.
pub fn groups(plan: &Plan) -> Vec<Group> {
    let both_paths = vec![PathKind::Count, PathKind::Static];
    let mut groups = vec![
        Group {
            phase: Phase::Matrix,
            setting: Setting::OneWorker,
            replicas: plan.replicas,
            // The direct door does not depend on the proxy setting: measured once, here.
            doors: vec![Door::Balancer, Door::Nginx, Door::Direct],
            paths: both_paths.clone(),
            concurrency: plan.concurrency.clone(),
        },
        Group {
            phase: Phase::Matrix,
            setting: Setting::AllCores,
            replicas: plan.replicas,
            doors: vec![Door::Balancer, Door::Nginx],
            paths: both_paths,
            concurrency: plan.concurrency.clone(),
        },
        // HTTP/2 to the replicas (`--upstream-protocol h2c`), beside the all-cores rows above on
        // the path that reaches the replicas' work: its rows join that table. (Its own group, not
        // a fourth door in the matrix, to keep the full plan within its ten minutes of load.)
        Group {
            phase: Phase::Matrix,
            setting: Setting::AllCores,
            replicas: plan.replicas,
            doors: vec![Door::BalancerH2c],
            paths: vec![PathKind::Count],
            // Quick (CI) checks that it works, at the lowest concurrency only.
            concurrency: if plan.quick {
                plan.concurrency.iter().copied().take(1).collect()
            } else {
                plan.concurrency.clone()
            },
        },
    ];
    if let Some(fixed) = plan.fixed_rate {
        // After the matrix, whose NGINX maxima set the rate.
        groups.push(Group {
            phase: Phase::FixedRate,
            setting: Setting::OneWorker,
            replicas: plan.replicas,
            doors: vec![Door::Balancer, Door::Nginx],
            // Quick (CI) checks that the phase works on the cheap path only.
            paths: if plan.quick {
                vec![PathKind::Static]
            } else {
                vec![PathKind::Count, PathKind::Static]
            },
            concurrency: vec![fixed.concurrency],
        });
    }
    // What least-request and the rate limiter cost per request, beside round-robin: the cheap
    // path, where the proxy's own work shows most.
    groups.push(Group {
        phase: Phase::Traffic,
        setting: Setting::AllCores,
        replicas: plan.replicas,
        doors: vec![
            Door::Balancer,
            Door::BalancerLeastRequest,
            Door::BalancerRateLimited,
        ],
        paths: vec![PathKind::Static],
        concurrency: vec![plan.sweep_concurrency],
    });
    for &replicas in &plan.replica_sweep {
        groups.push(Group {
            phase: Phase::ReplicaSweep,
            setting: Setting::AllCores,
            replicas,
            doors: vec![Door::Balancer, Door::Nginx],
            paths: vec![PathKind::Count],
            concurrency: vec![plan.sweep_concurrency],
        });
    }
    groups
}

/// Proxies started once with one configuration, and the runs made against them.
#[derive(Debug, Clone)]
pub struct Group {
    pub phase: Phase,
    pub setting: Setting,
    pub replicas: usize,
    pub doors: Vec<Door>,
    pub paths: Vec<PathKind>,
    pub concurrency: Vec<usize>,
}

impl Group {
    pub fn runs(&self, rounds: usize) -> usize {
        self.doors.len() * self.paths.len() * self.concurrency.len() * rounds
    }

    pub fn slug(&self) -> String {
        let setting = match self.setting {
            Setting::OneWorker => "1w",
            Setting::AllCores => "all",
        };
        format!("{setting}-{}r", self.replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{plan, BenchArgs};

    fn args(quick: bool) -> BenchArgs {
        let mut argv = vec!["bench", "--no-build"];
        if quick {
            argv.push("--quick");
        }
        crate::bench::parse_args(&argv).unwrap()
    }

    #[test]
    fn full_plan_meets_the_issue_and_fits_the_time_budget() {
        let plan = plan::plan(&args(false)).unwrap();
        assert!(plan.rounds >= 3);
        for c in [16, 64, 256] {
            assert!(plan.concurrency.contains(&c));
        }
        assert_eq!(plan.replica_sweep, vec![1, 2, 3, 4]);
        let groups = groups(&plan);
        let runs: usize = groups.iter().map(|g| g.runs(plan.rounds)).sum();
        let load_seconds = runs as f64 * plan.duration_ms as f64 / 1000.0;
        assert!(
            load_seconds < 10.0 * 60.0,
            "{runs} runs, {load_seconds} s of load"
        );
        // Both proxies at both settings, and the direct floor.
        assert!(groups.iter().any(|g| g.setting == Setting::OneWorker));
        assert!(groups.iter().any(|g| g.setting == Setting::AllCores));
        assert!(groups.iter().any(|g| g.doors.contains(&Door::Direct)));
    }

    #[test]
    fn quick_plan_stays_well_under_a_minute_of_load() {
        let plan = plan::plan(&args(true)).unwrap();
        assert_eq!(plan.rounds, 1);
        let runs: usize = groups(&plan).iter().map(|g| g.runs(plan.rounds)).sum();
        // One warm-up per door and cell.
        let warmups: usize = groups(&plan).iter().map(|g| g.runs(1)).sum();
        let load = runs as f64 * plan.duration_ms as f64 / 1000.0
            + warmups as f64 * plan.warmup_ms as f64 / 1000.0;
        assert!(load < 40.0, "{runs} runs: {load} s of load");
    }
}
