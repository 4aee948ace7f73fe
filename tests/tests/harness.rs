//! Checks of the harness itself: the real Redis it starts keeps data across a clean restart (AOF), and a
//! process that is dropped is gone.

use std::time::Duration;

use e2e::RedisServer;

#[tokio::test]
async fn redis_restart_keeps_data_written_before_a_clean_stop() {
    let mut redis = RedisServer::start().await;
    redis.set_i64("harness-key", 41).await;
    redis.stop().await;
    redis.start_again().await;
    assert_eq!(redis.get_i64("harness-key").await, 41);
}

#[tokio::test]
async fn dropped_process_is_killed() {
    let redis = RedisServer::start().await;
    let pid = redis.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(redis);
    let gone = e2e::wait_until(Duration::from_secs(5), || {
        // A reaped child has no /proc entry; a zombie would still show one.
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    assert!(gone, "redis-server {pid} outlived its RedisServer");
}
