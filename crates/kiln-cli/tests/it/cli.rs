//! The `kiln` binary on the embedded default: sync, inspect, load, reheat, gc, bad input.

use std::path::Path;

use crate::support::{example_repo, fails, git, json, kiln, ok};

fn sync_json(data: &Path, repo: &Path) -> serde_json::Value {
    json(&ok(kiln(data)
        .args(["--json", "sync"])
        .arg(repo)
        .args(["--course", "demo"])))
}

#[test]
fn sync_then_chunks_versions_ensure_and_cat() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());

    let first = sync_json(&data, &repo);
    assert_eq!(first["course"], "demo");
    let total = first["chunks_total"].as_u64().unwrap();
    assert!(total >= 10, "{first}");
    assert!(first["bytes_uploaded"].as_u64().unwrap() > 0);
    let version = first["version"].as_str().unwrap().to_string();

    let chunks = json(&ok(kiln(&data).args(["--json", "chunks", "demo"])));
    let rows = chunks["chunks"].as_array().unwrap();
    assert_eq!(rows.len() as u64, total);
    let mut kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds.len(),
        10,
        "the example course has every kind: {kinds:?}"
    );
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        first["chunks_uploaded"].as_u64(),
        Some(ids.len() as u64),
        "a first sync uploads every distinct chunk once"
    );
    let question = rows
        .iter()
        .find(|r| r["kind"] == "question")
        .expect("a question chunk");
    let qname = question["name"].as_str().unwrap().to_string();
    let qroot = question["root"].as_str().unwrap().to_string();

    let versions = json(&ok(kiln(&data).args(["--json", "versions", "demo"])));
    assert_eq!(versions["versions"][0]["version"], version.as_str());
    assert_eq!(versions["versions"][0]["current"], true);

    // Syncing the same commit again is a no-op.
    let again = sync_json(&data, &repo);
    assert_eq!(again["chunks_uploaded"], 0);
    assert_eq!(again["version"], version.as_str());

    let ensured = json(&ok(kiln(&data)
        .args(["--json", "ensure", "demo"])
        .arg(format!("question:{qname}"))));
    assert_eq!(ensured["version"], version.as_str());
    assert_eq!(ensured["downloaded"].as_array().unwrap().len(), 1);
    let root = Path::new(ensured["root"].as_str().unwrap());
    let info = root.join(&qroot).join("info.json");
    let source = std::fs::read(repo.join(&qroot).join("info.json")).unwrap();
    assert_eq!(
        std::fs::read(&info).unwrap(),
        source,
        "the cache holds the course's bytes"
    );

    // The second ensure downloads nothing; a shared directory the course lacks is absent.
    let warm = json(&ok(kiln(&data)
        .args(["--json", "ensure", "demo"])
        .arg(format!("question:{qname}"))
        .arg("serverFilesCourseInstance:NoSuchTerm")));
    assert_eq!(warm["downloaded"].as_array().unwrap().len(), 0);
    assert_eq!(warm["paths"].as_array().unwrap().len(), 1, "{warm}");
    assert_eq!(
        warm["absent"],
        serde_json::json!(["serverFilesCourseInstance:NoSuchTerm"])
    );
    let text = ok(kiln(&data)
        .args(["ensure", "demo", "serverFilesCourseInstance:NoSuchTerm"])
        .arg(format!("question:{qname}")));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("serverFilesCourseInstance:NoSuchTerm: absent from this version"),
        "{text}"
    );
    let err = fails(kiln(&data).args(["ensure", "demo", "question:no/such/question"]));
    assert!(err.contains("question:no/such/question"), "{err}");

    let cat = ok(kiln(&data)
        .args(["cat", "demo"])
        .arg(format!("{qroot}/info.json")));
    assert_eq!(cat.stdout, source);
    let cat = ok(kiln(&data).args(["cat", "demo", "infoCourse.json"]));
    assert_eq!(
        cat.stdout,
        std::fs::read(repo.join("infoCourse.json")).unwrap()
    );
}

#[test]
fn a_new_commit_uploads_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    sync_json(&data, &repo);
    let chunks = json(&ok(kiln(&data).args(["--json", "chunks", "demo"])));
    let q = chunks["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "question")
        .unwrap()
        .clone();
    let html = repo.join(q["root"].as_str().unwrap()).join("question.html");
    std::fs::write(&html, "<p>changed</p>\n").unwrap();
    git(&repo, &["commit", "-qam", "change one question"]);
    let second = sync_json(&data, &repo);
    assert_eq!(second["chunks_uploaded"], 1, "{second}");
    let versions = json(&ok(kiln(&data).args(["--json", "versions", "demo"])));
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let missing = tmp.path().join("no-such-course");
    let err = fails(kiln(&data).arg("sync").arg(&missing));
    assert!(err.contains("no-such-course"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let repo = example_repo(tmp.path());
    let err = fails(
        kiln(&data)
            .arg("sync")
            .arg(&repo)
            .args(["--rev", "nonexistent-branch"]),
    );
    assert!(err.contains("nonexistent-branch"), "{err}");

    let err = fails(kiln(&data).args(["chunks", "nope"]));
    assert!(err.contains("nope"), "{err}");

    let err = fails(kiln(&data).args(["ensure", "demo", "bogus:x"]));
    assert!(err.contains("bogus"), "{err}");

    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(&cfg, "[store]\nbuckit = \"x\"\n").unwrap();
    let err = fails(
        kiln(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["versions", "demo"]),
    );
    assert!(err.contains("buckit"), "{err}");
}

#[test]
fn sync_triggers_a_reheat_that_a_worker_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(
        &cfg,
        r#"
[[library]]
name = "cards"
source = { course = "demo" }
renderer = { command = ["sh", "-c", "printf '<div>'; cat; printf '</div>'"] }
page_size = 2
"#,
    )
    .unwrap();
    let synced = json(&ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "sync"])
        .arg(&repo)
        .args(["--course", "demo"])));
    assert!(synced["reheat_run"].is_u64(), "{synced}");
    ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["worker", "--exit-when-idle", "300ms"]));
    let runs = json(&ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "runs", "cards"])));
    let run = &runs["runs"][0];
    assert_eq!(run["state"], "complete", "{runs}");
    // One render per question of the version, plus the new-build and producer jobs.
    let chunks = json(&ok(kiln(&data).args(["--json", "chunks", "demo"])));
    let questions = chunks["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "question")
        .count() as u64;
    assert!(questions >= 5);
    assert!(run["jobs_done"].as_u64().unwrap() > questions, "{runs}");
    assert_eq!(run["jobs_dead"], 0);

    let err = fails(
        kiln(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["reheat", "nope"]),
    );
    assert!(err.contains("nope"), "{err}");

    // A targeted reheat of one question: marked stale, re-rendered by this process, and
    // no run started; a key the library does not render is marked but not queued.
    let targeted = json(&ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "reheat", "cards", "--key", "algebra/linear"])
        .args(["--key", "not/a/question", "--work"])));
    assert_eq!(targeted["marked"], 1, "{targeted}");
    assert_eq!(targeted["queued"], 1, "{targeted}");
    let after = json(&ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "runs", "cards"])));
    assert_eq!(
        after["runs"].as_array().unwrap().len(),
        runs["runs"].as_array().unwrap().len(),
        "a key reheat starts no run"
    );
    let err = fails(
        kiln(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["reheat", "cards", "--key", "a", "--group", "g"]),
    );
    assert!(err.contains("--group") || err.contains("--key"), "{err}");
}

#[test]
fn gc_deletes_only_unreferenced_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    sync_json(&data, &repo);
    let stray_dir = data.join("objects/chunks/ff");
    std::fs::create_dir_all(&stray_dir).unwrap();
    std::fs::write(
        stray_dir.join(format!("{}.tar.zst", "f".repeat(64))),
        b"orphan",
    )
    .unwrap();
    let report = json(&ok(kiln(&data).args(["--json", "gc", "--grace", "0s"])));
    assert_eq!(report["objects_deleted"], 1, "{report}");
    assert_eq!(report["bytes_freed"], 6);
    // Every chunk of the version is still there: a fresh cache can load the whole course.
    let chunks = json(&ok(kiln(&data).args(["--json", "chunks", "demo"])));
    let all = crate::support::chunk_refs(&chunks);
    ok(kiln(&data)
        .args(["ensure", "demo"])
        .args(&all)
        .arg("--cache-dir")
        .arg(tmp.path().join("fresh-cache")));
}

/// Runs a command expected to fail; returns (stdout, stderr).
fn fails_with_output(cmd: &mut std::process::Command) -> (String, String) {
    let out = cmd.output().expect("running kiln");
    assert!(!out.status.success(), "{cmd:?} succeeded unexpectedly");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_failure_with_json_prints_one_error_object_naming_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        kiln_sqlite::DataDir::new(&data).catalog_path(),
        vec![0x5au8; 8192],
    )
    .unwrap();
    let (stdout, stderr) = fails_with_output(kiln(&data).args(["--json", "versions", "x"]));
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout:?}"));
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    assert_eq!(v["error"], "backend", "{v}");
    let message = v["message"].as_str().unwrap();
    assert_eq!(
        message.matches("file is not a database").count(),
        1,
        "{message}"
    );
    assert_eq!(
        stderr.trim(),
        format!("error: {message}"),
        "the same on stderr"
    );

    // Without --json, stdout stays empty.
    let (stdout, stderr) = fails_with_output(kiln(&data).args(["versions", "x"]));
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr.matches("file is not a database").count(),
        1,
        "{stderr}"
    );

    let fresh = tmp.path().join("fresh");
    let (stdout, _) = fails_with_output(kiln(&fresh).args(["--json", "chunks", "nope"]));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["error"].is_string(), "{v}");
    assert!(v["message"].as_str().unwrap().contains("nope"), "{v}");
}

#[test]
fn messages_show_no_rust_debug_formatting() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(&cfg, "[catalog]\nbackend = \"postgres\"\n").unwrap();
    let err = fails(
        kiln(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["versions", "demo"]),
    );
    assert!(err.contains("backend postgres"), "{err}");
    assert!(!err.contains("Postgres"), "{err}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let out = ok(kiln(&data)
        .env("KILN_LOG", "kiln_sync=debug")
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("walked"),
        "debug logs were written: {stderr}"
    );
    assert!(!stderr.contains('\x1b'), "no ANSI escapes: {stderr:?}");
}

#[test]
fn a_course_reheating_an_unknown_library_fails_before_anything_is_published() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(
        &cfg,
        r#"
[[library]]
name = "cards"
source = { course = "demo" }
renderer = { command = ["cat"] }

[[course]]
id = "demo"
reheat = "nosuchlib"
"#,
    )
    .unwrap();
    let (stdout, stderr) = fails_with_output(
        kiln(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["--json", "sync"])
            .arg(&repo)
            .args(["--course", "demo"]),
    );
    for part in [
        "nosuchlib",
        "\"demo\"",
        "known libraries: cards",
        &cfg.display().to_string(),
    ] {
        assert!(stderr.contains(part), "{part} in {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["error"], "invalid_input", "{v}");
    let err = fails(kiln(&data).args(["chunks", "demo"]));
    assert!(err.contains("no version"), "nothing published: {err}");
}

#[test]
fn sync_reports_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo = example_repo(tmp.path());
    let clean = sync_json(&data, &repo);
    assert_eq!(clean["warnings"], serde_json::json!([]), "{clean}");
    std::fs::write(
        repo.join("clientFilesCourse/big.bin"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n",
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "an LFS pointer"]);
    let synced = sync_json(&data, &repo);
    let warnings = synced["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{synced}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("clientFilesCourse/big.bin"),
        "{synced}"
    );

    std::fs::write(
        repo.join("clientFilesCourse/big.bin"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:01\nsize 9\n",
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "another LFS pointer"]);
    let out = ok(kiln(&data)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("clientFilesCourse/big.bin")),
        "{human}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("clientFilesCourse/big.bin"),
        "logged too"
    );
}
