//! LISTEN/NOTIFY: a subscriber learns of a publish at once, from another connection pool, and
//! only of its own schema's; an idle worker wakes as soon as a job is enqueued.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ids::{CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_core::queue::{JobQueue, NewJob, priority};
use kiln_postgres::{PgCatalog, PgDb, PgQueue};

fn version(course: &str, v: &str) -> NewVersion {
    NewVersion {
        course: CourseId::new(course).unwrap(),
        version: VersionId::new(v).unwrap(),
        manifest: Manifest::default(),
    }
}

#[tokio::test]
async fn a_subscriber_hears_of_a_publish_at_once() {
    let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let db = crate::fresh_db(&url).await;
    let listener = PgCatalog::new(db.clone());
    // The publisher has its own pool: the notification crosses connections, as across hosts.
    let publisher = PgCatalog::new(PgDb::connect(&url, Some(db.schema())).await.unwrap());
    let elsewhere = PgCatalog::new(crate::fresh_db(&url).await);
    let mut versions = Box::pin(listener.subscribe_versions().await.unwrap());

    elsewhere
        .publish(version("other-schema", "v1"))
        .await
        .unwrap();
    let started = Instant::now();
    publisher.publish(version("demo", "v1")).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), versions.next())
        .await
        .expect("no notification within 5 s");
    assert_eq!(heard, Some(CourseId::new("demo").unwrap()));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // An unchanged publish commits nothing and notifies nobody; a roll-back does notify.
    publisher.publish(version("demo", "v1")).await.unwrap();
    publisher.publish(version("demo", "v2")).await.unwrap();
    publisher.publish(version("demo", "v1")).await.unwrap();
    for _ in 0..2 {
        let heard = tokio::time::timeout(Duration::from_secs(5), versions.next()).await;
        assert_eq!(heard.unwrap(), Some(CourseId::new("demo").unwrap()));
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), versions.next()).await;
    assert!(extra.is_err(), "unexpected notification {extra:?}");
}

fn job() -> NewJob {
    NewJob {
        payload: "noop".into(),
        priority: priority::RENDER,
        not_before: None,
        max_attempts: std::num::NonZeroU32::new(3).unwrap(),
        run: None,
        fence: None,
        dedupe: None,
        throttle: None,
    }
}

#[tokio::test]
async fn an_idle_worker_wakes_when_work_is_enqueued() {
    let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let db = crate::fresh_db(&url).await;
    let worker = PgQueue::new(db.clone());
    let producer = PgQueue::new(PgDb::connect(&url, Some(db.schema())).await.unwrap());
    // The first wait starts the listener and returns at once (work may predate it).
    tokio::time::timeout(
        Duration::from_secs(5),
        worker.wait_for_work(Duration::from_secs(60)),
    )
    .await
    .expect("the first wait returns at once");
    // With nothing enqueued, a wait does not return early.
    let idle = tokio::time::timeout(
        Duration::from_millis(300),
        worker.wait_for_work(Duration::from_secs(60)),
    )
    .await;
    assert!(idle.is_err(), "woke without work");

    let waiting = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker.wait_for_work(Duration::from_secs(60)).await;
            Instant::now()
        }
    });
    // Let the waiter park before enqueuing (bounded: it is parked once it has polled).
    tokio::task::yield_now().await;
    let enqueued = Instant::now();
    producer.enqueue(vec![job()]).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the worker did not wake within 5 s")
        .unwrap();
    assert!(woke.duration_since(enqueued) < Duration::from_secs(1));
}
