//! A server's read path needs only the object store: `kiln serve` with an unreachable
//! catalog serves what the sync published; a new version reaches a server by the push
//! channel (Redis) even when its poll is an hour; with the push channel down, by its poll.

use std::path::Path;
use std::time::Duration;

use crate::support::{Proc, example_repo, git, json, kiln, ok, start_server, wait_until};

fn current(client: &reqwest::blocking::Client, base: &str) -> Option<String> {
    let v: serde_json::Value = client
        .get(format!("{base}/v1/courses/demo"))
        .send()
        .ok()?
        .json()
        .ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Commits a change to the example course and syncs it; returns the new version.
fn publish_change(data: &Path, cfg: &Path, repo: &Path, n: u32) -> String {
    std::fs::write(
        repo.join("infoCourse.json"),
        format!("{{\"name\":\"round {n}\"}}"),
    )
    .unwrap();
    git(repo, &["commit", "-q", "-am", &format!("round {n}")]);
    let out = json(&ok(kiln(data)
        .arg("--config")
        .arg(cfg)
        .args(["--json", "sync"])
        .arg(repo)
        .args(["--course", "demo"])));
    out["version"].as_str().unwrap().to_string()
}

/// A config for the example's data directory: its local store, and `extra` sections.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("kiln.toml");
    std::fs::write(&cfg, extra).unwrap();
    cfg
}

#[test]
fn a_server_serves_from_the_store_with_no_catalog_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    ok(kiln(&data)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    // The server's catalog is a PostgreSQL nobody listens on; its store is the sync's.
    let store = data.join("objects");
    let cfg = config(
        tmp.path(),
        &format!(
            "[catalog]\nbackend = \"postgres\"\nurl = \"postgres://kiln@127.0.0.1:1/none\"\n\n[store]\nbackend = \"local\"\npath = {:?}\n",
            store.display().to_string()
        ),
    );
    let (_server, base) = start_server(
        kiln(&tmp.path().join("elsewhere"))
            .arg("--config")
            .arg(&cfg),
        Some(&tmp.path().join("cache")),
    );
    let client = reqwest::blocking::Client::new();
    let body = client
        .get(format!("{base}/v1/courses/demo/files/infoCourse.json"))
        .send()
        .unwrap();
    assert_eq!(body.status(), 200);
    assert!(body.text().unwrap().contains("name"));
    let ensured = client
        .post(format!("{base}/v1/courses/demo/ensure"))
        .json(&serde_json::json!({"chunks": ["courseInfo"]}))
        .send()
        .unwrap();
    assert_eq!(ensured.status(), 200);
}

#[test]
fn a_new_version_arrives_by_the_announcement_when_the_poll_is_an_hour() {
    let redis = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let cfg = config(
        tmp.path(),
        &format!(
            "[announce]\nbackend = \"redis\"\nurl = {redis:?}\nnamespace = \"kiln-test-{}\"\n\n[load]\nhead_poll = \"1h\"\n",
            std::process::id()
        ),
    );
    // A publish before the subscription is live is caught by the head read that follows
    // every (re)subscription.
    a_server_follows_a_publish(tmp.path(), &data, &cfg, &repo);
}

/// Publishes a version, starts a server, publishes another, and waits for the server to
/// serve it.
fn a_server_follows_a_publish(dir: &Path, data: &Path, cfg: &Path, repo: &Path) {
    let first = publish_change(data, cfg, repo, 0);
    let (_server, base): (Proc, String) = start_server(
        kiln(data).arg("--config").arg(cfg),
        Some(&dir.join("cache")),
    );
    let client = reqwest::blocking::Client::new();
    assert_eq!(current(&client, &base).as_deref(), Some(first.as_str()));
    let second = publish_change(data, cfg, repo, 1);
    assert!(
        wait_until(Duration::from_secs(60), || current(&client, &base)
            .as_deref()
            == Some(second.as_str())),
        "version {second} never reached the server"
    );
}

#[test]
fn with_the_push_channel_down_a_new_version_arrives_by_the_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    // Nothing listens on port 1: every announcement and subscription fails.
    let cfg = config(
        tmp.path(),
        "[announce]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n\n[load]\nhead_poll = \"200ms\"\n",
    );
    a_server_follows_a_publish(tmp.path(), &data, &cfg, &repo);
}

#[test]
fn servers_started_while_versions_are_published_serve_whole_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let cfg = config(tmp.path(), "[load]\nhead_poll = \"50ms\"\n");
    let first = publish_change(&data, &cfg, &repo, 0);
    let publishing = std::thread::spawn({
        let (data, cfg, repo) = (data.clone(), cfg.clone(), repo.clone());
        move || {
            (1..=8)
                .map(|n| publish_change(&data, &cfg, &repo, n))
                .collect::<Vec<_>>()
        }
    });
    let client = reqwest::blocking::Client::new();
    // (version, the round its infoCourse.json said) for every ensure.
    let mut seen = Vec::new();
    let mut started = 0;
    // Servers start one after another while the publishes run (bounded: 40 at most).
    while started < 40 && (!publishing.is_finished() || started < 3) {
        let (server, base) = start_server(
            kiln(&data).arg("--config").arg(&cfg),
            Some(&tmp.path().join(format!("cache-{started}"))),
        );
        started += 1;
        for _ in 0..5 {
            let ensured = client
                .post(format!("{base}/v1/courses/demo/ensure"))
                .json(&serde_json::json!({"chunks": ["courseInfo", "question:algebra/linear"]}))
                .send()
                .unwrap();
            assert_eq!(ensured.status(), 200, "{}", ensured.text().unwrap());
            let body: serde_json::Value = ensured.json().unwrap();
            let root = Path::new(body["root"].as_str().unwrap());
            // One version, whole: the course info of the version the ensure named.
            let info = std::fs::read_to_string(root.join("infoCourse.json")).unwrap();
            seen.push((body["version"].as_str().unwrap().to_string(), info));
        }
        drop(server);
    }
    let mut published = vec![first];
    published.extend(publishing.join().unwrap());
    assert!(started >= 3);
    for (version, info) in &seen {
        let round = published
            .iter()
            .position(|v| v == version)
            .unwrap_or_else(|| panic!("served version {version} was never published"));
        assert_eq!(
            info,
            &format!("{{\"name\":\"round {round}\"}}"),
            "version {version} served another version's file"
        );
    }
}
