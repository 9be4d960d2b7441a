//! Several `kiln` processes at once on the embedded default: a fresh data directory opened
//! together, a killed sync's lock taken over, `verify` finding and repairing damage.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kiln_core::catalog::Catalog;
use kiln_testkit::course_gen::{CourseSpec, write_git};

use crate::support::{Proc, example_repo, fails, json, kiln, ok};

/// Any number of kiln processes may start together on a fresh data directory (it used to
/// fail with "table courses already exists").
#[test]
fn processes_started_together_on_a_fresh_data_directory_all_work() {
    for round in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let repo = example_repo(tmp.path());
        let mut children: Vec<(String, std::process::Child)> = Vec::new();
        for i in 0..3 {
            let c = kiln(&data)
                .args(["sync"])
                .arg(&repo)
                .args(["--course", &format!("c{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            children.push((format!("sync c{i}"), c));
        }
        for args in [&["runs"][..], &["dlq", "list"], &["versions", "c0"]] {
            let c = kiln(&data)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            children.push((args.join(" "), c));
        }
        for (what, c) in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !err.contains("already exists"),
                "round {round}: {what}: {err}"
            );
            // `versions c0` may run before c0's sync publishes: not found is fine, a
            // schema error is not.
            if what.starts_with("sync") {
                assert!(out.status.success(), "round {round}: {what}: {err}");
            }
        }
        let v = json(&ok(kiln(&data).args(["--json", "versions", "c2"])));
        assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    }
}

async fn lock_holder(data: &Path, course: &str) -> Option<String> {
    let c = kiln_sqlite::DataDir::new(data).catalog().await.unwrap();
    c.lock_holder(&format!("sync:{course}"))
        .await
        .unwrap()
        .map(|h| h.owner)
}

/// A sync killed with its lock held does not block the next one: the lock's holder is
/// gone, the next sync takes it over at once and says so.
#[tokio::test]
async fn a_killed_syncs_lock_is_taken_over_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = tmp.path().join("big");
    write_git(&CourseSpec::new(3000), &repo, false).unwrap();
    // Open the data directory first so the lock can be read while the sync runs.
    ok(kiln(&data).args(["runs"]));
    let mut first = Proc(
        kiln(&data)
            .args(["sync"])
            .arg(&repo)
            .args(["--course", "big"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let holder = loop {
        if let Some(h) = lock_holder(&data, "big").await {
            break h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sync never took its lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(holder.contains(&format!("/{}/", first.0.id())), "{holder}");
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert!(
        lock_holder(&data, "big").await.is_some(),
        "the killed sync's lease is still live"
    );
    let start = Instant::now();
    let out = ok(kiln(&data)
        .env("KILN_LOG", "warn")
        .args(["sync"])
        .arg(&repo)
        .args(["--course", "big"]));
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("took over the sync lock"), "{err}");
    assert!(err.contains("is gone"), "{err}");
    // The lease lasts 15 s; a takeover does not wait for it (the sync itself takes a few).
    assert!(
        !err.contains("waiting for the sync lock"),
        "it waited for a dead holder: {err} ({took:?})"
    );
    assert_eq!(
        lock_holder(&data, "big").await,
        None,
        "released after the sync"
    );
}

/// `kiln verify` exits 1 naming a missing object; `--repair --source` stores it again.
#[test]
fn verify_reports_and_repairs_a_missing_object() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    ok(kiln(&data)
        .args(["sync"])
        .arg(&repo)
        .args(["--course", "demo"]));
    let clean = json(&ok(kiln(&data).args(["--json", "verify"])));
    assert_eq!(clean["still_bad"], 0, "{clean}");
    let chunks = json(&ok(kiln(&data).args(["--json", "chunks", "demo"])));
    let id = chunks["chunks"][0]["id"].as_str().unwrap().to_string();
    std::fs::remove_file(data.join(format!("objects/chunks/{}/{id}.tar.zst", &id[..2]))).unwrap();

    let err = fails(kiln(&data).args(["verify", "demo"]));
    assert!(
        err.contains("1 object is missing, corrupt or wrong"),
        "{err}"
    );
    let out = kiln(&data).args(["verify", "demo"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("chunk {id} (missing)")), "{text}");

    let fixed = json(&ok(kiln(&data)
        .args(["--json", "verify", "demo", "--repair", "--source"])
        .arg(&repo)));
    assert_eq!(fixed["bad"][0]["repaired"], true, "{fixed}");
    assert_eq!(fixed["still_bad"], 0);
    let clean = json(&ok(kiln(&data).args(["--json", "verify"])));
    assert_eq!(clean["still_bad"], 0, "{clean}");
}

/// `kiln verify` names a version whose published pointer is gone, and `--repair` (no source
/// needed: the catalog is the truth) writes it again; servers then read the version.
#[test]
fn verify_reports_and_repairs_the_published_view() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let synced = json(&ok(kiln(&data)
        .args(["--json", "sync"])
        .arg(&repo)
        .args(["--course", "demo"])));
    let version = synced["version"].as_str().unwrap().to_string();
    std::fs::remove_file(data.join(format!("objects/kiln/versions/demo/{version}.json"))).unwrap();
    let err = fails(kiln(&data).args(["verify", "demo"]));
    assert!(
        err.contains("1 object is missing, corrupt or wrong"),
        "{err}"
    );
    let out = json(&kiln(&data).args(["--json", "verify"]).output().unwrap());
    assert_eq!(
        out["published"]["problems"][0]["version"],
        version.as_str(),
        "{out}"
    );
    assert_eq!(
        out["published"]["problems"][0]["problem"], "it has no pointer",
        "{out}"
    );
    let fixed = json(&ok(kiln(&data).args(["--json", "verify", "--repair"])));
    assert_eq!(fixed["still_bad"], 0, "{fixed}");
    let clean = json(&ok(kiln(&data).args(["--json", "verify"])));
    assert_eq!(
        clean["published"]["problems"],
        serde_json::json!([]),
        "{clean}"
    );
    ok(kiln(&data).args(["cat", "demo", "infoCourse.json", "--version", &version]));
}
