//! The conformance suite of [`RunLedger`]: one `pub async fn` per contract clause, and
//! [`ledger_tests!`](crate::ledger_tests) to stamp out one test per check for a backend.

use std::collections::HashMap;
use std::time::Duration;

use kiln_core::Error;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState, RunStats};
use kiln_core::time::Clock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalog::library;
use crate::clock::ManualClock;

/// Options of a library-wide run of build `build`.
fn build(build: &str) -> BeginRun {
    BeginRun {
        build: build.into(),
        group: None,
    }
}

/// Contract (not found): an unknown run is `NotFound`.
pub async fn unknown_run_is_not_found(c: &dyn RunLedger) {
    let err = c.run(RunId(987_654_321)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    c.begin_run(&library("guides"), build("b1")).await.unwrap();
    let err = c.run(RunId(987_654_321)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Contract (idempotency): finishing a run as `Running` is `InvalidInput` and changes
/// nothing.
pub async fn finishing_as_running_is_invalid(c: &dyn RunLedger) {
    let r = c.begin_run(&library("guides"), build("b1")).await.unwrap();
    let err = c.finish_run(r.id, RunState::Running).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(c.run(r.id).await.unwrap(), r);
}

/// Contract: times are read from the backend's clock: a run's `created_at` is the clock's
/// time at `begin_run`, its `finished_at` the time it left `Running` (by `finish_run`, or
/// superseded by a newer `begin_run`).
pub async fn run_times_come_from_the_clock(c: &dyn RunLedger, clock: &ManualClock) {
    let lib = library("guides");
    clock.advance(Duration::from_secs(3600));
    let r1 = c.begin_run(&lib, build("b1")).await.unwrap();
    assert_eq!(r1.created_at, clock.now());
    clock.advance(Duration::from_secs(5));
    let r2 = c.begin_run(&lib, build("b2")).await.unwrap();
    assert_eq!(r2.created_at, clock.now());
    assert_eq!(c.run(r1.id).await.unwrap().finished_at, Some(clock.now()));
    clock.advance(Duration::from_secs(5));
    assert!(c.finish_run(r2.id, RunState::Complete).await.unwrap());
    let done = c.run(r2.id).await.unwrap();
    assert_eq!(done.created_at, r2.created_at);
    assert_eq!(done.finished_at, Some(clock.now()));
}

/// Contract (ordering, atomicity): generations increase strictly per library, and a
/// library-wide run supersedes every older running run of its library only.
pub async fn begin_run_supersedes_older_runs(c: &dyn RunLedger) {
    let lib = library("guides");
    let r1 = c.begin_run(&lib, build("b1")).await.unwrap();
    assert_eq!(r1.state, RunState::Running);
    assert_eq!(r1.library, lib);
    assert_eq!(r1.build, "b1");
    assert_eq!(r1.finished_at, None);
    let other = c.begin_run(&library("other"), build("x")).await.unwrap();
    let group = BeginRun {
        build: "b2".into(),
        group: Some("g1".into()),
    };
    let r2 = c.begin_run(&lib, group).await.unwrap();
    assert_eq!(r2.group.as_deref(), Some("g1"));
    assert!(r2.generation > r1.generation);
    assert_eq!(
        c.run(r1.id).await.unwrap().state,
        RunState::Running,
        "a group run supersedes nothing"
    );
    let r3 = c.begin_run(&lib, build("b3")).await.unwrap();
    assert!(r3.generation > r2.generation);
    for old in [r1.id, r2.id] {
        let run = c.run(old).await.unwrap();
        assert_eq!(run.state, RunState::Superseded);
        assert!(run.finished_at.is_some());
    }
    assert_eq!(c.run(r3.id).await.unwrap(), r3);
    assert_eq!(
        c.run(other.id).await.unwrap().state,
        RunState::Running,
        "other libraries untouched"
    );
}

/// Contract (ordering, atomicity): concurrent `begin_run`s get distinct generations.
pub async fn concurrent_begin_runs_get_distinct_generations(c: &dyn RunLedger) {
    let lib = library("guides");
    let runs =
        futures::future::join_all((0..8).map(|i| c.begin_run(&lib, build(&format!("b{i}"))))).await;
    let mut gens: Vec<u64> = runs.into_iter().map(|r| r.unwrap().generation).collect();
    gens.sort_unstable();
    gens.dedup();
    assert_eq!(gens.len(), 8);
    let all = c.runs(Some(&lib), 100).await.unwrap();
    assert_eq!(
        all.iter().filter(|r| r.state == RunState::Running).count(),
        1
    );
}

/// Contract (stats): concurrent adds to a run's stats all count, runs keep their own, a run
/// never added to has the default, and an unknown run is `NotFound`.
pub async fn run_stats_add_up_under_concurrency(c: &dyn RunLedger) {
    let lib = library("guides");
    let a = c.begin_run(&lib, build("a")).await.unwrap();
    let b = c.begin_run(&library("other"), build("b")).await.unwrap();
    assert_eq!(c.run_stats(a.id).await.unwrap(), RunStats::default());
    let one = |ms: u64, failure: Option<&str>| {
        let mut s = RunStats::default();
        s.observe_render(Duration::from_millis(ms));
        if let Some(f) = failure {
            s.fail(f);
        }
        s.pruned = 1;
        s
    };
    let adds: Vec<RunStats> = (0..20)
        .map(|i| {
            one(
                i % 4,
                (i % 5 == 0).then_some("renderer answered 500 for \"k\""),
            )
        })
        .collect();
    let results = futures::future::join_all(adds.iter().map(|s| c.add_run_stats(a.id, s))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    c.add_run_stats(b.id, &one(40_000, Some("timeout")))
        .await
        .unwrap();
    let got = c.run_stats(a.id).await.unwrap();
    assert_eq!(got.renders(), 20);
    assert_eq!(got.pruned, 20);
    assert_eq!(
        got.failures.get("renderer answered 500 for \"…\"").copied(),
        Some(4),
        "{:?}",
        got.failures
    );
    assert_eq!(got.failures.len(), 1);
    assert_eq!(got.latency_quantile(0.5), Some(0.001));
    assert_eq!(got.latency_quantile(0.99), Some(0.005));
    let other = c.run_stats(b.id).await.unwrap();
    assert_eq!(
        (other.renders(), other.latency_quantile(0.99)),
        (1, Some(f64::INFINITY))
    );
    let err = c.run_stats(RunId(987_654_321)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = c
        .add_run_stats(RunId(987_654_321), &RunStats::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Contract (idempotency): `finish_run` moves a running run only, and only once.
pub async fn finish_run_only_from_running(c: &dyn RunLedger) {
    let lib = library("guides");
    let r = c.begin_run(&lib, build("b1")).await.unwrap();
    assert!(c.finish_run(r.id, RunState::Complete).await.unwrap());
    let done = c.run(r.id).await.unwrap();
    assert_eq!(done.state, RunState::Complete);
    assert!(done.finished_at.is_some());
    assert!(!c.finish_run(r.id, RunState::Failed).await.unwrap());
    assert_eq!(c.run(r.id).await.unwrap().state, RunState::Complete);
    let old = c.begin_run(&lib, build("b2")).await.unwrap();
    c.begin_run(&lib, build("b3")).await.unwrap();
    assert!(
        !c.finish_run(old.id, RunState::Complete).await.unwrap(),
        "superseded stays"
    );
    assert_eq!(c.run(old.id).await.unwrap().state, RunState::Superseded);
}

/// Contract (ordering): `runs` lists the newest first, filtered by library and limited.
pub async fn runs_newest_first(c: &dyn RunLedger) {
    let (a, b) = (library("a"), library("b"));
    let mut ids = Vec::new();
    for (i, lib) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let r = c.begin_run(lib, build(&format!("{i}"))).await.unwrap();
        ids.push(r.id);
    }
    let of_a: Vec<RunId> = c
        .runs(Some(&a), 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(of_a, [ids[4], ids[2], ids[0]]);
    let newest: Vec<RunId> = c
        .runs(None, 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest, [ids[4], ids[3]]);
}

/// Contract, all clauses together: a seeded random sequence of `begin_run`s (library-wide
/// and group runs of two libraries), `finish_run`s and clock moves, applied to the ledger
/// and to a `Vec` model, must agree at every step (runs, generations, states and times).
pub async fn model_based_random_operations(c: &dyn RunLedger, clock: &ManualClock) {
    let libs = [library("lib-a"), library("lib-b")];
    let groups = [None, Some("g1"), Some("g2")];
    let states = [RunState::Complete, RunState::Failed, RunState::Superseded];
    let mut rng = StdRng::seed_from_u64(7);
    let mut model: Vec<Run> = Vec::new();
    let mut generations: HashMap<LibraryName, u64> = HashMap::new();
    for step in 0..200 {
        let ctx = format!("step {step}");
        match rng.random_range(0..10) {
            0..=3 => {
                let lib = &libs[rng.random_range(0..libs.len())];
                let group = groups[rng.random_range(0..groups.len())].map(str::to_string);
                let opts = BeginRun {
                    build: format!("b{step}"),
                    group: group.clone(),
                };
                let got = c.begin_run(lib, opts).await.unwrap();
                let now = clock.now();
                let g = generations.entry(lib.clone()).or_default();
                *g += 1;
                if group.is_none() {
                    for r in model.iter_mut() {
                        if &r.library == lib && r.state == RunState::Running {
                            r.state = RunState::Superseded;
                            r.finished_at = Some(now);
                        }
                    }
                }
                let want = Run {
                    id: got.id,
                    library: lib.clone(),
                    build: format!("b{step}"),
                    generation: *g,
                    group,
                    state: RunState::Running,
                    created_at: now,
                    finished_at: None,
                };
                assert_eq!(got, want, "{ctx}");
                assert!(model.iter().all(|r| r.id != got.id), "{ctx}: a fresh id");
                model.push(want);
            }
            4..=6 if !model.is_empty() => {
                let i = rng.random_range(0..model.len());
                let r = &mut model[i];
                let state = states[rng.random_range(0..states.len())];
                let moved = c.finish_run(r.id, state).await.unwrap();
                assert_eq!(moved, r.state == RunState::Running, "{ctx}");
                if moved {
                    r.state = state;
                    r.finished_at = Some(clock.now());
                }
            }
            7 => clock.advance(Duration::from_millis(rng.random_range(1..5_000))),
            _ => {
                let lib = rng.random_bool(0.5).then(|| &libs[rng.random_range(0..2)]);
                let limit = rng.random_range(1..8);
                let want: Vec<&Run> = model
                    .iter()
                    .rev()
                    .filter(|r| lib.is_none_or(|l| &r.library == l))
                    .take(limit)
                    .collect();
                let got = c.runs(lib, limit).await.unwrap();
                assert_eq!(got.iter().collect::<Vec<_>>(), want, "{ctx}");
            }
        }
    }
    for r in &model {
        assert_eq!(&c.run(r.id).await.unwrap(), r);
    }
}

/// Contract (schedule ticks): of concurrent claims of one tick exactly one wins; a tick at
/// or before the claimed one is refused, a later one is won; libraries keep their own.
pub async fn one_claim_of_a_tick_wins(c: &dyn RunLedger) {
    use kiln_core::time::Timestamp;
    let lib = library("guides");
    let won =
        futures::future::join_all((0..8).map(|_| c.claim_tick(&lib, Timestamp(60_000)))).await;
    let won: Vec<bool> = won.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert!(!c.claim_tick(&lib, Timestamp(60_000)).await.unwrap());
    assert!(
        !c.claim_tick(&lib, Timestamp(0)).await.unwrap(),
        "an older tick"
    );
    assert!(
        c.claim_tick(&library("other"), Timestamp(60_000))
            .await
            .unwrap()
    );
    assert!(c.claim_tick(&lib, Timestamp(120_000)).await.unwrap());
    assert!(!c.claim_tick(&lib, Timestamp(90_000)).await.unwrap());
}

/// Stamps out one `#[tokio::test]` per ledger check. `$setup` is an expression that
/// evaluates to a function (or closure) from a [`SharedClock`](kiln_core::time::SharedClock)
/// to a future of `Arc<dyn RunLedger>` (or any smart pointer to a `RunLedger`) reading time
/// from that clock; it is evaluated once per test and must give an isolated, empty ledger.
/// Each test builds its ledger on a fresh [`ManualClock`].
#[macro_export]
macro_rules! ledger_tests {
    ($setup:expr) => {
        $crate::ledger_tests!(@ $setup;
            [
                unknown_run_is_not_found,
                begin_run_supersedes_older_runs,
                concurrent_begin_runs_get_distinct_generations,
                finish_run_only_from_running,
                finishing_as_running_is_invalid,
                runs_newest_first,
                run_stats_add_up_under_concurrency,
                one_claim_of_a_tick_wins,
            ]
            [
                run_times_come_from_the_clock,
                model_based_random_operations,
            ]
        );
    };
    (@ $setup:expr; [$($check:ident),* $(,)?] [$($timed:ident),* $(,)?]) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let clock = $crate::clock::ManualClock::new();
                let setup = $setup;
                let ledger = setup(clock.shared()).await;
                $crate::ledger::$check(&*ledger).await;
            }
        )*
        $(
            #[::tokio::test]
            async fn $timed() {
                let clock = $crate::clock::ManualClock::new();
                let setup = $setup;
                let ledger = setup(clock.shared()).await;
                $crate::ledger::$timed(&*ledger, &clock).await;
            }
        )*
    };
}
