//! The swap: kept groups are the same objects, changed and added ones are new, removed ones are
//! stopped, and a refused table changes nothing.

use super::*;
use crate::backends::group::tests::settings;
use crate::routes::matcher::{HostPattern, PathPrefix, Rule};
use crate::routes::TargetSpec;

fn to(name: &str, path: &str, group: &str) -> RouteSpec {
    RouteSpec {
        name: name.into(),
        rule: Rule {
            host: HostPattern::Any,
            path: PathPrefix::parse(path).unwrap(),
        },
        targets: vec![TargetSpec {
            upstream: group.into(),
            weight: 1,
        }],
        strip_prefix: false,
    }
}

/// A port nothing listens on: probes fail at once, so settling is quick.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn group_of(groups: &Groups, name: &str) -> Arc<UpstreamGroup> {
    let table = groups.routes.load_full();
    let found = table.groups().iter().find(|g| &*g.name == name).cloned();
    found.unwrap_or_else(|| panic!("no group {name}"))
}

#[tokio::test]
async fn unchanged_groups_are_kept_changed_ones_replaced_removed_ones_stopped() {
    let port = closed_port();
    let a = (Arc::<str>::from("a"), settings(port));
    let b = (Arc::<str>::from("b"), settings(port));
    let routes = [to("a", "/", "a"), to("b", "/b", "b")];
    let mut groups = Groups::start(
        &[a.clone(), b.clone()],
        &routes,
        Arc::new(Metrics::new()),
        1,
    )
    .await
    .unwrap();
    let (a_before, b_before) = (group_of(&groups, "a"), group_of(&groups, "b"));

    let mut b_changed = b.1.clone();
    b_changed.max_5xx = 3;
    let c = (Arc::<str>::from("c"), settings(port));
    let next = [a.clone(), (b.0.clone(), b_changed), c];
    let routes = [to("a", "/", "a"), to("b", "/b", "b"), to("c", "/c", "c")];
    let applied = groups.apply(&next, &routes).await.unwrap();
    assert_eq!(applied.kept, vec![Arc::from("a")]);
    assert_eq!(applied.started, vec![Arc::from("b"), Arc::from("c")]);
    assert!(applied.stopped.is_empty());
    assert!(
        Arc::ptr_eq(&a_before, &group_of(&groups, "a")),
        "a kept as it was"
    );
    assert!(
        !Arc::ptr_eq(&b_before, &group_of(&groups, "b")),
        "b rebuilt"
    );

    let applied = groups.apply(&[a], &[to("a", "/", "a")]).await.unwrap();
    assert_eq!(applied.stopped.len(), 2);
    assert_eq!(groups.routes.load().groups().len(), 1);
}

#[tokio::test]
async fn a_refused_table_changes_nothing() {
    let port = closed_port();
    let a = (Arc::<str>::from("a"), settings(port));
    let mut groups = Groups::start(
        std::slice::from_ref(&a),
        &[to("a", "/", "a")],
        Arc::new(Metrics::new()),
        1,
    )
    .await
    .unwrap();
    let before = groups.routes.load_full();
    let duplicate = [to("x", "/", "a"), to("y", "/", "a")];
    assert!(groups.apply(&[a], &duplicate).await.is_err());
    assert!(Arc::ptr_eq(&before, &groups.routes.load_full()));
}
