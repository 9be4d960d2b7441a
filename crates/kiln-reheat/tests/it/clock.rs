//! Time under the test's control: a Rust handler over the in-memory backends, no network,
//! under `tokio::time::pause()`. The injected clock stamps build labels, entries and
//! expiry marks; `Reheat::wait` reports progress until the run ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::ledger::RunState;
use kiln_core::time::{Clock, SharedClock};
use kiln_reheat::{
    BuildContext, Handler, Libraries, Library, LibrarySettings, Prune, RenderError, RenderItem,
    Rendered, StartOptions, WaitEvent, WaitOptions, Work,
};
use kiln_testkit::clock::{ManualClock, TokioClock};
use serde_json::Value;

use crate::support::{Backends, Harness, test_worker_options};

/// Lists `keys` in pages of the library's page size (the cursor is the page number) and
/// renders each key as its own name.
#[derive(Debug, Default)]
struct Keys {
    keys: Mutex<Vec<String>>,
}

impl Keys {
    fn new(n: usize) -> Arc<Keys> {
        Arc::new(Keys {
            keys: Mutex::new((0..n).map(|i| format!("key-{i:03}")).collect()),
        })
    }
}

#[async_trait]
impl Handler for Keys {
    async fn new_build(&self, _: &BuildContext) -> kiln_core::Result<Vec<Work>> {
        Ok(vec![Work::Producer {
            cursor: Value::from(0),
        }])
    }

    async fn produce(&self, ctx: &BuildContext, cursor: &Value) -> kiln_core::Result<Vec<Work>> {
        let page = cursor.as_u64().unwrap_or(0) as usize;
        let size = ctx.page_size as usize;
        let keys = self.keys.lock().unwrap().clone();
        let mut work: Vec<Work> = keys
            .iter()
            .skip(page * size)
            .take(size)
            .map(|k| {
                Work::Render(RenderItem {
                    key: k.clone(),
                    group: "g".into(),
                    props: Value::Null,
                })
            })
            .collect();
        if (page + 1) * size < keys.len() {
            work.push(Work::Producer {
                cursor: Value::from(page as u64 + 1),
            });
        }
        Ok(work)
    }

    async fn render(&self, key: &str, _: &Value) -> Result<Rendered, RenderError> {
        Ok(Rendered::new(Bytes::from(key.to_string()), "text/plain"))
    }
}

fn harness(handler: Arc<Keys>, settings: LibrarySettings, clock: SharedClock) -> Harness {
    let b = Backends::mem_on(clock.clone());
    let mut libs = Libraries::new();
    libs.insert(Library::new(guides(), handler, settings))
        .unwrap();
    Harness::with_clock(b, libs, test_worker_options(), clock)
}

fn guides() -> LibraryName {
    LibraryName::new("guides").unwrap()
}

#[tokio::test(start_paused = true)]
async fn wait_reports_progress_until_the_run_completes() {
    let settings = LibrarySettings {
        page_size: std::num::NonZeroU32::new(10).unwrap(),
        ..LibrarySettings::default()
    };
    let h = harness(Keys::new(35), settings, TokioClock::new().shared());
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let s = h
        .reheat
        .wait(run.id, &WaitOptions::default(), |e| {
            if let WaitEvent::Progress(s) = e {
                seen.push((s.run.state, s.tally.done + s.tally.dead + s.tally.dropped))
            }
        })
        .await
        .unwrap();
    assert_eq!(s.run.state, RunState::Complete);
    // 1 new-build + 4 producer pages + 35 renders.
    assert_eq!((s.tally.enqueued, s.tally.done), (40, 40), "{:?}", s.tally);
    assert_eq!(seen.last(), Some(&(RunState::Complete, 40)));
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress went back: {seen:?}"
    );
    assert!(
        seen[..seen.len() - 1]
            .iter()
            .all(|(state, _)| *state == RunState::Running),
        "{seen:?}"
    );
    assert_eq!(h.reheat.cache().keys(&guides()).await.unwrap().len(), 35);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_injected_clock_stamps_build_labels_entries_and_expiry_marks() {
    let clock = ManualClock::new();
    let ttl = Duration::from_secs(3600);
    let settings = LibrarySettings {
        prune: Prune::Ttl(ttl),
        render_through: true,
        ..LibrarySettings::default()
    };
    let keys = Keys::new(3);
    let h = harness(keys.clone(), settings, clock.shared());
    let t1 = clock.now();
    let run1 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(run1.build, format!("manual-{}", t1.0));
    assert_eq!(
        h.reheat
            .wait(run1.id, &WaitOptions::default(), |_| {})
            .await
            .unwrap()
            .run
            .state,
        RunState::Complete
    );
    for k in ["key-000", "key-001", "key-002"] {
        let e = h.backends.cache.get(&guides(), k).await.unwrap().unwrap();
        assert_eq!((e.written_at, e.expires_at), (t1, None), "{k}");
    }

    // A minute later, a build that no longer lists key-002: its old entry is marked to
    // expire a TTL after the start, the rewritten ones are stamped with the new time.
    clock.advance(Duration::from_secs(60));
    let t2 = clock.now();
    keys.keys.lock().unwrap().pop();
    let run2 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(
        h.reheat
            .wait(run2.id, &WaitOptions::default(), |_| {})
            .await
            .unwrap()
            .run
            .state,
        RunState::Complete
    );
    let dropped = h
        .backends
        .cache
        .get(&guides(), "key-002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (dropped.written_at, dropped.expires_at),
        (t1, Some(t2.plus(ttl)))
    );
    let kept = h
        .backends
        .cache
        .get(&guides(), "key-000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kept.written_at, kept.expires_at), (t2, None));

    // A render-through is stamped by the same clock.
    clock.advance(Duration::from_secs(60));
    let fresh = h.reheat.read("guides", "fresh").await.unwrap().unwrap();
    assert_eq!(fresh.written_at, clock.now());
    assert_eq!(fresh.generation, run2.generation);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_ttl_shorter_than_the_last_run_is_refused_with_the_numbers() {
    let clock = ManualClock::new();
    let settings = LibrarySettings {
        prune: Prune::Ttl(Duration::from_secs(5)),
        ..LibrarySettings::default()
    };
    let mut libs = Libraries::new();
    libs.insert(Library::new(guides(), Keys::new(3), settings))
        .unwrap();
    let h = Harness::with_clock(
        Backends::mem_on(clock.shared()),
        libs,
        test_worker_options(),
        clock.shared(),
    );
    // The first run has no history to compare with; it takes 28 s by the clock.
    let run1 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(28));
    assert_eq!(
        h.reheat
            .wait(run1.id, &WaitOptions::default(), |_| {})
            .await
            .unwrap()
            .run
            .state,
        RunState::Complete
    );
    let err = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, kiln_core::Error::Precondition(_)), "{err:?}");
    for needle in [
        "guides",
        "prune.ttl 5s",
        "28.0 s",
        &format!("run {}", run1.id),
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    // Nothing was started: the refused run is not in the ledger.
    assert_eq!(h.reheat.ledger().runs(None, 10).await.unwrap().len(), 1);
    h.stop().await;
}

/// A library's `schedule`: of three workers' services polling at one tick, exactly one
/// starts its build, labelled with the tick; the same tick never starts twice, the next
/// tick starts one more, and a tick more than a minute old is skipped.
#[tokio::test]
async fn a_scheduled_tick_starts_one_build_across_workers() {
    use kiln_core::time::Timestamp;
    let hour = Timestamp(1_796_234_400_000); // 2026-12-02T18:00:00Z
    let clock = ManualClock::at(hour.plus(Duration::from_secs(2)));
    let b = Backends::mem_on(clock.shared());
    let settings = LibrarySettings {
        schedule: Some(kiln_reheat::Schedule::parse("0 * * * *").unwrap()),
        ..LibrarySettings::default()
    };
    let services: Vec<kiln_reheat::Reheat> = (0..3)
        .map(|_| {
            let mut libs = Libraries::new();
            libs.insert(Library::new(guides(), Keys::new(3), settings.clone()))
                .unwrap();
            kiln_reheat::Reheat::new(
                b.ledger.clone(),
                b.queue.clone(),
                b.cache.clone(),
                libs,
                clock.shared(),
            )
        })
        .collect();
    let poll_all = || futures::future::join_all(services.iter().map(|s| s.run_schedules()));
    let started: Vec<_> = poll_all().await.into_iter().flatten().collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].build, "schedule-2026-12-02T18:00:00Z");
    assert!(
        poll_all().await.iter().all(Vec::is_empty),
        "a tick started twice"
    );

    clock.advance(Duration::from_secs(3600 + 30));
    let started: Vec<_> = poll_all().await.into_iter().flatten().collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].build, "schedule-2026-12-02T19:00:00Z");
    assert_eq!(
        b.ledger.runs(Some(&guides()), 10).await.unwrap().len(),
        2,
        "runs in the ledger"
    );

    // 21:05: 20:00 and 21:00 were missed by more than the grace; neither starts.
    clock.advance(Duration::from_secs(2 * 3600 + 5 * 60 - 30));
    assert!(poll_all().await.iter().all(Vec::is_empty));
    assert_eq!(b.ledger.runs(Some(&guides()), 10).await.unwrap().len(), 2);
}
