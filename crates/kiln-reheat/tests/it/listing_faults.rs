//! Listings that never end: a `next` that is always `page + 1` stops at `max_pages`, and one
//! that cycles (0, 1, 0, 1...) is detected; either way the run fails with a dead letter that
//! says why, and no item is rendered twice.

use kiln_core::ledger::RunState;
use kiln_reheat::StartOptions;

use crate::site::{Next, Site, items};
use crate::support::{Backends, Harness, http_lib};

both!(a_listing_whose_next_never_ends_fails_at_max_pages);
async fn a_listing_whose_next_never_ends_fails_at_max_pages(b: Backends) {
    let site = Site::start(items(25, "g")).await;
    site.with(|s| s.next = Next::Forever);
    let mut cfg = http_lib("guides", &site);
    cfg.max_pages = std::num::NonZeroU64::new(20).unwrap();
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
