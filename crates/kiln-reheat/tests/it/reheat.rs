//! Reheats that go right: end to end, pagination, supersession, pruning both ways, the
//! zero-miss window, render-through, and the course source with a command renderer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kiln_core::catalog::NewVersion;
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, LibraryName, VersionId};
use kiln_core::ledger::RunState;
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_reheat::StartOptions;
use kiln_reheat::config::{PruneConfig, RendererConfig, SourceConfig};

use crate::site::{Site, items};
use crate::support::{Backends, Harness, http_lib, poll_until};

fn lib(name: &str) -> LibraryName {
    LibraryName::new(name).unwrap()
}

both!(http_listing_and_renderer_reheat_end_to_end);
async fn http_listing_and_renderer_reheat_end_to_end(b: Backends) {
    let site = Site::start(items(25, "g")).await;
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete);
    // 1 new-build + 3 producer pages + 25 renders, all done.
    assert_eq!(
        (s.tally.enqueued, s.tally.done, s.tally.dead, s.tally.failed),
        (29, 29, 0, 0)
    );
    let keys = h.reheat.cache().keys(&lib("guides")).await.unwrap();
    assert_eq!(keys.len(), 25);
    assert!(
        keys.iter()
            .all(|(_, g, grp)| *g == run.generation && grp == "g")
    );
    let e = h.reheat.read("guides", "item-0007").await.unwrap().unwrap();
    assert_eq!(e.content_type, "text/plain");
    assert_eq!(e.bytes, "item-0007@v1 {\"n\":7}");
    assert_eq!(site.total_renders(), 25);
    assert_eq!(h.metrics.snapshot().jobs_done, 29);
    h.stop().await;
}

#[tokio::test]
async fn listing_is_fetched_page_by_page_with_the_configured_page_size() {
    let site = Site::start(items(20, "g")).await;
    let mut cfg = http_lib("guides", &site);
    cfg.page_size = std::num::NonZeroU32::new(7).unwrap();
    let h = Harness::new(Backends::mem(), &[cfg]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete);
    let mut pages = site.with(|s| s.pages.clone());
    pages.sort();
    assert_eq!(pages, vec![(0, 7), (1, 7), (2, 7)]);
    assert_eq!(s.tally.enqueued, 1 + 3 + 20);
    assert_eq!(
        h.reheat.cache().keys(&lib("guides")).await.unwrap().len(),
        20
    );
    h.stop().await;
}

both!(a_newer_build_supersedes_a_running_one_and_no_entry_stays_at_the_older_generation);
async fn a_newer_build_supersedes_a_running_one_and_no_entry_stays_at_the_older_generation(
    b: Backends,
) {
    let site = Site::start(items(40, "g")).await;
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    // Build 1 with renders held at the gate: its jobs are leased or pending.
    site.gate.send_replace(false);
    let run1 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let q = h.reheat.queue().clone();
    poll_until("build 1's render jobs", Duration::from_secs(10), || {
        let q = q.clone();
        async move { (q.tally(run1.id).await.unwrap().enqueued >= 12).then_some(()) }
    })
    .await;
    site.with(|s| s.tag = "v2".into());
    let run2 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert!(run2.generation > run1.generation);
    site.gate.send_replace(true);
    let s2 = h.wait(run2.id).await;
    assert_eq!(s2.run.state, RunState::Complete);
    let s1 = h.reheat.status(run1.id).await.unwrap();
    assert_eq!(s1.run.state, RunState::Superseded);
    assert!(s1.tally.dropped > 0, "{:?}", s1.tally);
    assert_eq!(s1.tally.pending(), 0, "{:?}", s1.tally);
    let keys = h.reheat.cache().keys(&lib("guides")).await.unwrap();
    assert_eq!(keys.len(), 40);
    for (k, g, _) in keys {
        assert_eq!(g, run2.generation, "{k} stayed at generation {g}");
        let e = h.reheat.read("guides", &k).await.unwrap().unwrap();
        assert!(e.bytes.starts_with(format!("{k}@v2").as_bytes()));
    }
    h.stop().await;
}

async fn prune_case(b: Backends, prune: PruneConfig) {
    let site = Site::start(items(30, "g")).await;
    let mut cfg = http_lib("guides", &site);
    cfg.prune = prune.clone();
    let h = Harness::new(b, &[cfg]);
    let run1 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run1.id).await.run.state, RunState::Complete);
    let dropped = ["item-0003", "item-0017", "item-0029"];
    site.with(|s| s.items.retain(|i| !dropped.contains(&i.key.as_str())));
    let run2 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run2.id).await.run.state, RunState::Complete);
    if let PruneConfig::Ttl(_) = prune {
        // Option b: the dropped entries were marked at the start and expire; the rewritten
        // ones lost their mark.
        for k in dropped {
            let e = h.backends.cache.get(&lib("guides"), k).await.unwrap();
            assert!(e.is_none_or(|e| e.expires_at.is_some()), "{k} not marked");
        }
        let cache = h.backends.cache.clone();
        poll_until("marked entries to expire", Duration::from_secs(15), || {
            let cache = cache.clone();
            async move {
                for k in dropped {
                    if cache.get(&lib("guides"), k).await.unwrap().is_some() {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
    }
    let keys = h.reheat.cache().keys(&lib("guides")).await.unwrap();
    let mut want: Vec<String> = items(30, "g").into_iter().map(|i| i.key).collect();
    want.retain(|k| !dropped.contains(&k.as_str()));
    assert_eq!(keys.iter().map(|k| k.0.clone()).collect::<Vec<_>>(), want);
    for (k, g, _) in &keys {
        assert_eq!(*g, run2.generation, "{k}");
        let e = h.reheat.read("guides", k).await.unwrap().unwrap();
        assert_eq!(e.expires_at, None, "{k} kept its expiry mark");
    }
    h.stop().await;
}

both!(pruning_on_complete_removes_exactly_the_items_the_listing_dropped);
async fn pruning_on_complete_removes_exactly_the_items_the_listing_dropped(b: Backends) {
    prune_case(b, PruneConfig::OnComplete).await;
}

both!(pruning_by_ttl_marks_then_expires_exactly_the_items_the_listing_dropped);
async fn pruning_by_ttl_marks_then_expires_exactly_the_items_the_listing_dropped(b: Backends) {
    prune_case(b, PruneConfig::Ttl("2s".into())).await;
}

both!(readers_hammering_existing_keys_during_a_reheat_never_miss);
async fn readers_hammering_existing_keys_during_a_reheat_never_miss(b: Backends) {
    let site = Site::start(items(120, "g")).await;
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    let run1 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run1.id).await.run.state, RunState::Complete);
    site.with(|s| s.tag = "v2".into());
    let done = Arc::new(AtomicBool::new(false));
    let (reads, misses, new_seen) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut readers = Vec::new();
    for r in 0..4 {
        let (reheat, done, reads, misses, new_seen) = (
            h.reheat.clone(),
            done.clone(),
            reads.clone(),
            misses.clone(),
            new_seen.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut i = r;
            while !done.load(Ordering::Relaxed) {
                let key = format!("item-{:04}", i % 120);
                match reheat.read("guides", &key).await.unwrap() {
                    Some(e) if e.bytes.starts_with(b"item") => {
                        if e.generation > run1.generation {
                            new_seen.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        misses.fetch_add(1, Ordering::Relaxed);
                    }
                }
                reads.fetch_add(1, Ordering::Relaxed);
                i += 7;
                tokio::task::yield_now().await;
            }
        }));
    }
    let run2 = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run2.id).await.run.state, RunState::Complete);
    // Keep reading a little past completion (the sweep) too.
    let before = reads.load(Ordering::Relaxed);
    let reads2 = reads.clone();
    poll_until("more reads", Duration::from_secs(10), || {
        let reads2 = reads2.clone();
        async move { (reads2.load(Ordering::Relaxed) > before + 500).then_some(()) }
    })
    .await;
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 500);
    assert!(
        new_seen.load(Ordering::Relaxed) > 0,
        "readers never saw the new build"
    );
    assert_eq!(misses.load(Ordering::Relaxed), 0);
    h.stop().await;
}

#[tokio::test]
async fn render_through_renders_a_missing_key_once_for_many_readers() {
    let site = Site::start(items(3, "g")).await;
    let mut cfg = http_lib("guides", &site);
    cfg.render_through = true;
    let mut plain = http_lib("plain", &site);
    plain.render_through = false;
    let h = Harness::new(Backends::mem(), &[cfg, plain]);
    assert!(h.reheat.read("plain", "fresh").await.unwrap().is_none());
    site.gate.send_replace(false);
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let reheat = h.reheat.clone();
            tokio::spawn(async move { reheat.read("guides", "fresh").await })
        })
        .collect();
    // Every reader is waiting on the one render held at the gate.
    tokio::task::yield_now().await;
    site.gate.send_replace(true);
    for r in readers {
        let e = r.await.unwrap().unwrap().unwrap();
        assert!(e.bytes.starts_with(b"fresh@v1"));
    }
    assert_eq!(site.with(|s| s.renders.get("fresh").copied()), Some(1));
    assert!(
        h.backends
            .cache
            .get(&lib("guides"), "fresh")
            .await
            .unwrap()
            .is_some()
    );
    h.stop().await;
}

#[tokio::test]
async fn course_source_renders_each_question_of_the_current_version_with_a_command() {
    let backends = Backends::mem();
    let entry = |kind, name: &str, root: &str| ManifestEntry {
        kind,
        name: name.into(),
        id: ChunkId([7; 32]),
        size: 1,
        root: root.into(),
    };
    let manifest = Manifest::new(vec![
        entry(ChunkKind::Question, "topic/q1", "questions/topic/q1"),
        entry(ChunkKind::Question, "topic/q2", "questions/topic/q2"),
        entry(ChunkKind::Question, "q3", "questions/q3"),
        entry(ChunkKind::Elements, "", "elements"),
    ])
    .unwrap();
    backends
        .catalog
        .publish(NewVersion {
            course: CourseId::new("demo").unwrap(),
            version: VersionId::new("abc123").unwrap(),
            manifest,
        })
        .await
        .unwrap();
    let site = Site::start(vec![]).await;
    let mut cfg = http_lib("questions", &site);
    cfg.source = SourceConfig::Course("demo".into());
    cfg.renderer = RendererConfig::Command(vec!["cat".into()]);
    cfg.page_size = std::num::NonZeroU32::new(2).unwrap();
    cfg.content_type = Some("application/json".into());
    let h = Harness::new(backends, &[cfg]);
    let run = h
        .reheat
        .start("questions", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(run.build, "abc123");
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete);
    assert_eq!(s.tally.enqueued, 1 + 2 + 3);
    let keys = h.reheat.cache().keys(&lib("questions")).await.unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(names, ["q3", "topic/q1", "topic/q2"]);
    assert!(keys.iter().all(|k| k.2 == "demo"));
    let e = h
        .reheat
        .read("questions", "topic/q2")
        .await
        .unwrap()
        .unwrap();
    let props: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap();
    assert_eq!(props["qid"], "topic/q2");
    assert_eq!(props["version"], "abc123");
    assert_eq!(e.content_type, "application/json");
    h.stop().await;
}

both!(a_runs_end_is_posted_to_its_webhook_once_through_failures);
async fn a_runs_end_is_posted_to_its_webhook_once_through_failures(b: Backends) {
    let site = Site::start(items(12, "g")).await;
    site.with(|s| s.hook_failures = 2);
    let mut cfg = http_lib("guides", &site);
    cfg.webhook = Some(site.hook_url());
    let h = Harness::new(b, &[cfg]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run.id).await.run.state, RunState::Complete);
    let site2 = site.clone();
    poll_until("the webhook delivery", Duration::from_secs(15), || {
        let site = site2.clone();
        async move { site.with(|s| (!s.hooks.is_empty()).then_some(())) }
    })
    .await;
    // Give a duplicate the time to show up, if one were sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks = site.with(|s| s.hooks.clone());
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let (event, body) = &hooks[0];
    assert_eq!(event, "run.complete");
    assert_eq!(body["event"], "run.complete");
    assert_eq!(body["run"], run.id.0);
    assert_eq!(body["library"], "guides");
    assert_eq!(body["state"], "complete");
    assert_eq!(body["pruned"], 0);
    assert!(body["jobs_done"].as_u64().unwrap() >= 13, "{body}");
    assert!(body["wall_ms"].as_i64().unwrap() >= 0, "{body}");
    assert_eq!(
        site.with(|s| s.hook_failures),
        0,
        "the two failures were retried"
    );
    h.stop().await;
}

both!(superseded_and_cancelled_runs_are_posted_too);
async fn superseded_and_cancelled_runs_are_posted_too(b: Backends) {
    let site = Site::start(items(5, "g")).await;
    // The listing never answers, so the runs stay running until they are ended.
    site.with(|s| s.mode = crate::site::Mode::Hang);
    let mut cfg = http_lib("guides", &site);
    cfg.webhook = Some(site.hook_url());
    cfg.timeout = "60s".into();
    let h = Harness::new(b, &[cfg]);
    let first = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let second = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let cancelled = h.reheat.cancel(second.id).await.unwrap();
    assert_eq!(cancelled.run.state, RunState::Cancelled);
    assert!(matches!(
        h.reheat.cancel(second.id).await,
        Err(kiln_core::Error::Precondition(_))
    ));
    // The events are delivered by the worker beside the hanging listing requests.
    let site2 = site.clone();
    poll_until("two webhook deliveries", Duration::from_secs(15), || {
        let site = site2.clone();
        async move { site.with(|s| (s.hooks.len() >= 2).then_some(())) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks = site.with(|s| s.hooks.clone());
    let events: Vec<(&str, i64)> = hooks
        .iter()
        .map(|(e, b)| (e.as_str(), b["run"].as_i64().unwrap()))
        .collect();
    assert!(
        events.contains(&("run.superseded", first.id.0)),
        "{events:?}"
    );
    assert!(
        events.contains(&("run.cancelled", second.id.0)),
        "{events:?}"
    );
    assert_eq!(events.len(), 2, "{events:?}");
    site.with(|s| s.mode = crate::site::Mode::Ok);
    h.stop().await;
}

both!(a_runs_summary_counts_renders_failures_and_what_it_pruned);
async fn a_runs_summary_counts_renders_failures_and_what_it_pruned(b: Backends) {
    let site = Site::start(items(10, "g")).await;
    let mut cfg = http_lib("guides", &site);
    cfg.max_attempts = std::num::NonZeroU32::new(2).unwrap();
    let h = Harness::new(b, &[cfg]);
    let start = || h.reheat.start("guides", StartOptions::default());
    let run1 = start().await.unwrap();
    let s1 = h.wait(run1.id).await;
    assert_eq!(s1.run.state, RunState::Complete);
    assert_eq!(s1.stats.renders(), 10);
    assert_eq!(s1.stats.pruned, 0);
    assert!(s1.stats.failures.is_empty(), "{:?}", s1.stats.failures);
    assert!(s1.stats.latency_quantile(0.99).is_some());

    site.with(|s| s.items.truncate(7));
    let run2 = start().await.unwrap();
    let s2 = h.wait(run2.id).await;
    assert_eq!((s2.stats.renders(), s2.stats.pruned), (7, 3));

    site.with(|s| s.mode = crate::site::Mode::Fail500);
    let run3 = start().await.unwrap();
    let s3 = h.wait(run3.id).await;
    assert_eq!(s3.run.state, RunState::Failed);
    // Two attempts of each of the 7 keys, under one reason with the key elided.
    assert_eq!(s3.stats.failures.len(), 1, "{:?}", s3.stats.failures);
    let (reason, n) = s3.stats.failures.iter().next().unwrap();
    assert_eq!(*n, 14, "{reason}");
    assert!(
        reason.contains("500") && reason.contains("\"…\""),
        "{reason}"
    );
    assert!(!reason.contains("item-"), "{reason}");
    assert_eq!(s3.stats.renders(), 14);
    assert_eq!(s3.stats.pruned, 0, "a failed run prunes nothing");
    h.stop().await;
}

both!(a_paused_library_runs_nothing_until_resumed);
async fn a_paused_library_runs_nothing_until_resumed(b: Backends) {
    let site = Site::start(items(8, "g")).await;
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    h.reheat.pause("guides").await.unwrap();
    assert!(h.reheat.is_paused("guides").await.unwrap());
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    // The worker is running; give it time to take the jobs, which it must not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = h.reheat.status(run.id).await.unwrap();
    assert_eq!(s.run.state, RunState::Running);
    assert_eq!((s.tally.done, s.tally.pending()), (0, 1), "{:?}", s.tally);
    assert_eq!(site.total_renders(), 0);
    assert!(h.reheat.resume("guides").await.unwrap());
    assert!(!h.reheat.is_paused("guides").await.unwrap());
    assert_eq!(h.wait(run.id).await.run.state, RunState::Complete);
    assert_eq!(site.total_renders(), 8);
    assert!(matches!(
        h.reheat.pause("nope").await,
        Err(kiln_core::Error::NotFound { .. })
    ));
    h.stop().await;
}
