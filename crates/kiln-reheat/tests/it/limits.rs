//! A library's limits hold across workers: two workers over one queue never render more of
//! its keys at once than its concurrency, and a rate limit paces a reheat by its bucket.

use std::time::{Duration, Instant};

use kiln_core::ledger::RunState;
use kiln_reheat::StartOptions;
use kiln_reheat::config::LimitsConfig;

use crate::site::{Site, items};
use crate::support::{Backends, Harness, http_lib};

/// The same backends again, for a second worker (the first keeps any directory alive).
fn again(b: &Backends) -> Backends {
    Backends::from_parts(
        b.ledger.clone(),
        b.catalog.clone(),
        b.queue.clone(),
        b.cache.clone(),
    )
}

async fn reheat_with(b: Backends, site: &Site, limits: LimitsConfig) -> Duration {
    let mut cfg = http_lib("guides", site);
    cfg.limits = limits;
    let second = again(&b);
    let one = Harness::new(b, std::slice::from_ref(&cfg));
    let two = Harness::new(second, &[cfg]);
    let t = Instant::now();
    let run = one
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = two.wait(run.id).await;
    let took = t.elapsed();
    assert_eq!(s.run.state, RunState::Complete);
    assert_eq!((s.tally.dead, s.tally.failed), (0, 0));
    assert!(site.with(|s| s.renders.len() == 40 && s.renders.values().all(|n| *n == 1)));
    one.stop().await;
    two.stop().await;
    took
}

async fn concurrency_holds_across_two_workers(b: Backends) {
    let site = Site::start(items(40, "g")).await;
    site.with(|s| s.render_delay = Duration::from_millis(20));
    reheat_with(
        b,
        &site,
        LimitsConfig {
            concurrency: std::num::NonZeroU32::new(2),
            ..LimitsConfig::default()
        },
    )
    .await;
    let peak = site.with(|s| s.in_flight.1);
    assert_eq!(peak, 2, "two at once across two workers of concurrency 16");
}
both!(concurrency_holds_across_two_workers);

async fn a_rate_paces_the_reheat(b: Backends) {
    let site = Site::start(items(40, "g")).await;
    // A burst of 5, then 50/s: the last of 40 renders cannot start before 0.7 s.
    let took = reheat_with(
        b,
        &site,
        LimitsConfig {
            rate: Some(50.0),
            burst: Some(5),
            ..LimitsConfig::default()
        },
    )
    .await;
    assert!(
        took >= Duration::from_millis(700),
        "40 renders at 50/s in {took:?}"
    );
}
both!(a_rate_paces_the_reheat);
