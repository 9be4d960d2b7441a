//! Bad input, one test each: an unknown library, a listing that is not the documented JSON,
//! a renderer that fails (500, hang, unreachable), an oversized payload, an invalid config.
//! Each checks the error names the culprit and the run's counters stay true.

use kiln_core::Error;
use kiln_core::ledger::RunState;
use kiln_reheat::payload::{JobPayload, MAX_PAYLOAD_BYTES};
use kiln_reheat::{StartOptions, parse_libraries};
use serde_json::json;

use crate::site::{Item, Mode, Site, items};
use crate::support::{Backends, Harness, http_lib};

#[tokio::test]
async fn an_unknown_library_is_not_found_and_named() {
    let site = Site::start(items(1, "g")).await;
    let h = Harness::new(Backends::mem(), &[http_lib("guides", &site)]);
    let err = h
        .reheat
        .start("nope", StartOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("\"nope\"") && msg.contains("guides"), "{msg}");
    assert!(matches!(
        h.reheat.read("nope", "k").await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        h.reheat.ledger().runs(None, 10).await.unwrap().is_empty(),
        "no run may start"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_listing_with_fields_the_format_does_not_name_is_read_and_they_are_ignored() {
    let site = Site::start(items(1, "g")).await;
    site.with(|s| {
        s.bad_listing = Some(
            r#"{"items":[{"key":"a","group":"g","props":{},"title":"A","updated":1}],
                "next":null,"total":1,"schema":2}"#
                .into(),
        )
    });
    let h = Harness::new(Backends::mem(), &[http_lib("guides", &site)]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run.id).await.run.state, RunState::Complete);
    let keys = h
        .reheat
        .cache()
        .keys(&kiln_core::ids::LibraryName::new("guides").unwrap())
        .await
        .unwrap();
    assert_eq!(keys, [("a".to_string(), run.generation, "g".to_string())]);
    h.stop().await;
}

#[tokio::test]
async fn a_listing_whose_pages_start_at_one_is_asked_for_page_one_first() {
    let site = Site::start(items(25, "g")).await;
    let mut cfg = http_lib("guides", &site);
    cfg.first_page = 1;
    let h = Harness::new(Backends::mem(), &[cfg]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(h.wait(run.id).await.run.state, RunState::Complete);
    // The test site numbers from 0, so page 1 (size 10) is items 10-19 and page 2 the rest.
    let pages: Vec<u64> = site.with(|s| s.pages.iter().map(|p| p.0).collect());
    assert_eq!(pages, [1, 2]);
    h.stop().await;
}

#[tokio::test]
async fn a_listing_that_is_not_the_documented_json_fails_the_run_naming_library_and_url() {
    let site = Site::start(items(5, "g")).await;
    site.with(|s| s.bad_listing = Some(r#"{"entries": []}"#.into()));
    let h = Harness::new(Backends::mem(), &[http_lib("guides", &site)]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Failed);
    // new-build done, producer dead at once (permanent), nothing else.
    assert_eq!(
        (s.tally.enqueued, s.tally.done, s.tally.dead),
        (2, 1, 1),
        "{:?}",
        s.tally
    );
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let e = &dead[0].error;
    assert!(
        e.contains("library guides") && e.contains(&site.listing_url()),
        "{e}"
    );
    assert!(
        e.contains("not the documented JSON") && e.contains("items"),
        "{e}"
    );
    assert_eq!(dead[0].attempts, 1);
    h.stop().await;
}

async fn renderer_failure(
    b: Backends,
    mode: Mode,
    cfg_edit: impl FnOnce(&mut kiln_reheat::LibraryConfig),
    reason: &[&str],
) {
    let site = Site::start(items(4, "g")).await;
    site.with(|s| s.mode = mode);
    let mut cfg = http_lib("guides", &site);
    cfg_edit(&mut cfg);
    let h = Harness::new(b, &[cfg]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Failed);
    // 1 new-build + 1 producer done; 4 renders each failed 3 times, then dead.
    assert_eq!(s.tally.enqueued, 6, "{:?}", s.tally);
    assert_eq!(s.tally.done, 2, "{:?}", s.tally);
    assert_eq!(s.tally.dead, 4, "{:?}", s.tally);
    assert_eq!(s.tally.failed, 12, "{:?}", s.tally);
    assert_eq!(s.tally.pending(), 0);
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 4);
    for d in &dead {
        assert_eq!(d.attempts, 3);
        assert!(d.error.contains("library guides"), "{}", d.error);
        assert!(reason.iter().any(|r| d.error.contains(r)), "{}", d.error);
        assert!(matches!(
            JobPayload::decode(&d.payload).unwrap(),
            JobPayload::Render { .. }
        ));
    }
    let m = h.metrics.snapshot();
    assert_eq!((m.jobs_dead, m.jobs_retried), (4, 8));
    // The failed run pruned nothing and wrote nothing.
    assert!(
        h.reheat
            .cache()
            .keys(&kiln_core::ids::LibraryName::new("guides").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    h.stop().await;
}

both!(a_renderer_answering_500_is_retried_then_dead_lettered_with_the_reason);
async fn a_renderer_answering_500_is_retried_then_dead_lettered_with_the_reason(b: Backends) {
    renderer_failure(b, Mode::Fail500, |_| {}, &["answered 500"]).await;
}

#[tokio::test]
async fn a_renderer_that_hangs_times_out_then_is_dead_lettered() {
    renderer_failure(
        Backends::mem(),
        Mode::Hang,
        |c| c.timeout = "150ms".into(),
        &["timed out", "timeout"],
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_renderer_is_retried_then_dead_lettered() {
    // A port that was just bound and closed again: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    renderer_failure(
        Backends::mem(),
        Mode::Ok,
        |c| {
            c.renderer =
                kiln_reheat::config::RendererConfig::Http(format!("http://{closed}/render"))
        },
        &["error sending request", "connect"],
    )
    .await;
}

both!(an_oversized_payload_is_a_dead_letter_naming_the_key_and_the_rest_goes_on);
async fn an_oversized_payload_is_a_dead_letter_naming_the_key_and_the_rest_goes_on(b: Backends) {
    let mut list = items(5, "g");
    list.push(Item {
        key: "huge".into(),
        group: "g".into(),
        props: json!({ "blob": "x".repeat(MAX_PAYLOAD_BYTES + 10) }),
    });
    let site = Site::start(list).await;
    let h = Harness::new(b, &[http_lib("guides", &site)]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Failed);
    assert_eq!(
        (s.tally.enqueued, s.tally.done, s.tally.dead),
        (8, 7, 1),
        "{:?}",
        s.tally
    );
    let dead = h.reheat.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let e = &dead[0].error;
    assert!(
        e.contains("\"huge\"") && e.contains("65536-byte cap"),
        "{e}"
    );
    assert_eq!(site.total_renders(), 5);
    assert!(site.with(|s| !s.renders.contains_key("huge")));
    h.stop().await;
}

#[test]
fn an_invalid_config_names_the_key() {
    let base = r#"
        [server]
        listen = "x"

        [[library]]
        name = "guides"
        source = { http = "http://127.0.0.1:9/items" }
        renderer = { http = "http://127.0.0.1:9/render" }
    "#;
    assert_eq!(parse_libraries(base).unwrap().len(), 1);
    let cases = [
        ("page_size = \"many\"", "library[0].page_size"),
        ("prune = { ttl = \"soon\" }", "prune.ttl"),
        ("prune = \"sometimes\"", "library[0].prune"),
        ("timeout = \"0s\"", "timeout"),
        ("max_attempts = 0", "max_attempts"),
        ("colour = \"red\"", "colour"),
        ("first_page = 2", "first_page"),
        ("failure_ttl = \"later\"", "failure_ttl"),
        ("webhook = \"ftp://x\"", "webhook"),
    ];
    for (line, want) in cases {
        let err = parse_libraries(&format!("{base}{line}\n")).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(want), "{line}: {msg}");
        assert!(!msg.contains('\n'), "{line}: not one line: {msg}");
    }
    let err = parse_libraries(&base.replace(
        "source = { http = \"http://127.0.0.1:9/items\" }",
        "source = { ftp = \"x\" }",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("library[0].source"), "{err}");
    let err = parse_libraries(&base.replace("http://127.0.0.1:9/render", "not a url")).unwrap_err();
    assert!(err.to_string().contains("renderer.http"), "{err}");
    let err = parse_libraries(&base.replace("name = \"guides\"", "name = \"../x\"")).unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
    let twice = format!(
        "{base}\n[[library]]\nname = \"guides\"\nsource = {{ course = \"c\" }}\nrenderer = {{ command = [\"cat\"] }}\n"
    );
    let err = parse_libraries(&twice).unwrap_err();
    assert!(
        err.to_string().contains("library[1].name") && err.to_string().contains("twice"),
        "{err}"
    );
}
