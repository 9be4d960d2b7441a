//! Listings that never end: a `next` that is always `page + 1` stops at `max_pages`, one
//! that cycles (0, 1, 0, 1...) is detected, and one whose new pages repeat old items stops
//! once `max_idle_pages` pages in a row added no new key; either way the run fails with a
//! dead letter that says why, and no item is rendered twice.

use std::time::Instant;

use kiln_core::ledger::RunState;
use kiln_reheat::StartOptions;

use crate::site::{Next, Site, items};
use crate::support::{Backends, Harness, http_lib};

both!(a_listing_whose_next_never_ends_fails_at_max_pages);
async fn a_listing_whose_next_never_ends_fails_at_max_pages(b: Backends) {
    let site = Site::start(items(25, "g")).await;
    site.with(|s| s.next = Next::Forever);
    let mut cfg = http_lib("guides", &site);
    cfg.max_pages = std::num::NonZeroU64::new(20);
    let h = Harness::new(b, &[cfg]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Failed, "{:?}", s.tally);
    // new-build + 20 producers + 25 renders; the 20th producer is the dead letter.
    assert_eq!(
        (
            s.tally.enqueued,
            s.tally.done,
            s.tally.dead,
            s.tally.pending()
        ),
        (46, 45, 1, 0),
        "{:?}",
        s.tally
    );
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let e = &dead[0].error;
    assert!(
        e.contains("library guides") && e.contains("more than 20 pages (max_pages)"),
        "{e}"
    );
    assert_eq!(dead[0].attempts, 1, "a listing past its cap is not retried");
    assert_eq!(site.with(|s| s.pages.len()), 20);
    assert_eq!(site.total_renders(), 25);
    h.stop().await;
}

both!(a_listing_that_cycles_fails_naming_the_cycle);
async fn a_listing_that_cycles_fails_naming_the_cycle(b: Backends) {
    let site = Site::start(items(15, "g")).await;
    site.with(|s| s.next = Next::Cycle);
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Failed, "{:?}", s.tally);
    assert_eq!((s.tally.dead, s.tally.pending()), (1, 0), "{:?}", s.tally);
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let e = &dead[0].error;
    assert!(
        e.contains("library guides") && e.contains("the listing cycles"),
        "{e}"
    );
    assert!(e.contains("cursor 0"), "{e}");
    let pages = site.with(|s| s.pages.len());
    assert!(pages <= 8, "the cycle was found after {pages} pages");
    // The repeated pages' items are the same keys: each is rendered once.
    assert!(site.with(|s| s.renders.len() == 15 && s.renders.values().all(|n| *n == 1)));
    // new-build, the pages, the 15 renders: nothing else.
    assert_eq!(s.tally.enqueued, 1 + pages as u64 + 15, "{:?}", s.tally);
    h.stop().await;
}

both!(a_listing_that_repeats_itself_fails_once_its_pages_add_no_new_key);
async fn a_listing_that_repeats_itself_fails_once_its_pages_add_no_new_key(b: Backends) {
    // Pages 0-2 list the 25 items; every page after them repeats one of them, under a new
    // cursor, so neither max_pages (a million pages of 10 by default) nor cycle detection
    // stops the listing.
    let site = Site::start(items(25, "g")).await;
    site.with(|s| s.next = Next::Repeat);
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    let started = Instant::now();
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    eprintln!(
        "a repeating listing failed after {:?} and {} pages",
        started.elapsed(),
        site.with(|s| s.pages.len())
    );
    assert_eq!(s.run.state, RunState::Failed, "{:?}", s.tally);
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let e = &dead[0].error;
    assert!(
        e.contains("library guides")
            && e.contains("page 102")
            && e.contains("100 pages in a row added no new key (max_idle_pages)"),
        "{e}"
    );
    assert_eq!(dead[0].attempts, 1, "a repeating listing is not retried");
    // Pages 3 to 102 added nothing: the 100th of them fails, and no page comes after it.
    assert_eq!(site.with(|s| s.pages.len()), 103);
    assert!(site.with(|s| s.renders.len() == 25 && s.renders.values().all(|n| *n == 1)));
    assert_eq!(
        (s.tally.enqueued, s.tally.dead, s.tally.pending()),
        (1 + 103 + 25, 1, 0),
        "{:?}",
        s.tally
    );
    h.stop().await;
}

both!(a_group_run_pages_past_other_groups_items_without_counting_them);
async fn a_group_run_pages_past_other_groups_items_without_counting_them(b: Backends) {
    // The site ignores `group=`: a run of group "late" reads five pages of "early" items,
    // all filtered out, before its own. Such pages add nothing and do not count as idle.
    let mut all = items(50, "early");
    all.extend(items(5, "late").into_iter().map(|mut i| {
        i.key = format!("late-{}", i.key);
        i
    }));
    let site = Site::start(all).await;
    let mut cfg = http_lib("guides", &site);
    cfg.max_idle_pages = std::num::NonZeroU64::new(2).unwrap();
    let h = Harness::new(b, &[cfg]);
    let opts = StartOptions {
        build: None,
        group: Some("late".into()),
    };
    let run = h.reheat.start("guides", opts).await.unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    assert_eq!(site.with(|s| s.pages.len()), 6);
    assert_eq!(site.total_renders(), 5);
    h.stop().await;
}
