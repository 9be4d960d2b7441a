//! Render results have a size cap (`max_render_bytes`): a renderer answering more is not
//! read past it, and its job is a dead letter (not retried) that names the key and the cap;
//! nothing is stored for it and the rest of the run goes on.

use kiln_core::ids::LibraryName;
use kiln_core::ledger::RunState;
use kiln_reheat::StartOptions;
use kiln_reheat::config::RendererConfig;

use crate::site::{Site, items};
use crate::support::{Backends, Harness, http_lib};

const CAP: u64 = 10_000;

async fn capped_run(b: Backends, cfg: kiln_reheat::LibraryConfig) -> Harness {
    let h = Harness::new(b, &[cfg]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Failed, "{:?}", s.tally);
    h
}

both!(a_render_past_the_cap_is_a_dead_letter_naming_the_key_and_the_cap);
async fn a_render_past_the_cap_is_a_dead_letter_naming_the_key_and_the_cap(b: Backends) {
    let site = Site::start(items(4, "g")).await;
    // One body with a content-length, one streamed without: both over the cap.
    site.with(|s| {
        s.big = vec![
            ("item-0001".into(), 50 * 1024 * 1024, false),
            ("item-0002".into(), 50 * 1024 * 1024, true),
        ]
    });
    let mut cfg = http_lib("guides", &site);
    cfg.max_render_bytes = std::num::NonZeroU64::new(CAP).unwrap();
    let h = capped_run(b, cfg).await;
    let mut dead = h.reheat.queue().dead_letters(10).await.unwrap();
    dead.sort_by(|a, b| a.error.cmp(&b.error));
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (d, key) in dead.iter().zip(["item-0001", "item-0002"]) {
        assert!(
            d.error.contains(&format!("{key:?}")) && d.error.contains("more than 10000 bytes"),
            "{}",
            d.error
        );
        assert!(d.error.contains("max_render_bytes"), "{}", d.error);
        assert_eq!(d.attempts, 1, "a body past the cap is not retried");
    }
    let keys = h
        .reheat
        .cache()
        .keys(&LibraryName::new("guides").unwrap())
        .await
        .unwrap();
    let mut stored: Vec<String> = keys.into_iter().map(|k| k.0).collect();
    stored.sort();
    assert_eq!(
        stored,
        ["item-0000", "item-0003"],
        "nothing stored past the cap"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_command_writing_past_the_cap_is_a_dead_letter_naming_the_key() {
    let site = Site::start(items(2, "g")).await;
    let mut cfg = http_lib("guides", &site);
    cfg.max_render_bytes = std::num::NonZeroU64::new(CAP).unwrap();
    // Writes 50 MB for item-0001 and a small entry otherwise.
    cfg.renderer = RendererConfig::Command(vec![
        "sh".into(),
        "-c".into(),
        "cat >/dev/null; if [ \"$KILN_KEY\" = item-0001 ]; then head -c 50000000 /dev/zero; else echo ok; fi"
            .into(),
    ]);
    let h = capped_run(Backends::mem(), cfg).await;
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let e = &dead[0].error;
    assert!(
        e.contains("\"item-0001\"") && e.contains("more than 10000 bytes"),
        "{e}"
    );
    assert_eq!(dead[0].attempts, 1);
    let keys = h
        .reheat
        .cache()
        .keys(&LibraryName::new("guides").unwrap())
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].0, "item-0000");
    h.stop().await;
}
