//! The multi-node run over the fleet backends: one sync host, three `kiln serve` and two
//! `kiln worker` processes on loopback over PostgreSQL + Redis + S3. Requires
//! `TEST_POSTGRES_URL`, `TEST_REDIS_URL`, `TEST_S3_ENDPOINT` and `TEST_S3_BUCKET` (as
//! `.ci/run` sets them); skipped, saying so, without them.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kiln_testkit::course_gen::{
    CourseSpec, GenFile, commit_question_change, course_files, question_files, write_git,
};
use kiln_testkit::skip_unless_env;

use crate::support::{Proc, json, kiln, ok, start_server};

fn start_server_at(data: &Path, cfg: &Path, cache: &Path) -> (Proc, String) {
    start_server(kiln(data).arg("--config").arg(cfg), Some(cache))
}

fn start_worker(data: &Path, cfg: &Path) -> Proc {
    Proc(
        kiln(data)
            .arg("--config")
            .arg(cfg)
            .args(["worker", "--concurrency", "8"])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting kiln worker"),
    )
}

fn get(client: &reqwest::blocking::Client, url: &str) -> reqwest::blocking::Response {
    client
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn current_version(client: &reqwest::blocking::Client, base: &str) -> Option<String> {
    let resp = client.get(format!("{base}/v1/courses/mn")).send().ok()?;
    let v: serde_json::Value = resp.json().ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Every file the course ships when question 0 is at change `round` (README.md is not shipped:
/// no layout rule covers it).
fn shipped_files(spec: &CourseSpec, round: u64) -> Vec<GenFile> {
    let mut files: Vec<GenFile> = course_files(spec)
        .into_iter()
        .filter(|f| f.path != "README.md")
        .collect();
    for i in 0..spec.questions {
        files.extend(question_files(spec, i, if i == 0 { round } else { 0 }));
    }
    files
}

fn run_status(data: &Path, cfg: &Path) -> serde_json::Value {
    let runs = json(&ok(kiln(data)
        .arg("--config")
        .arg(cfg)
        .args(["--json", "runs", "cards", "--limit", "1"])));
    runs["runs"][0].clone()
}

#[test]
fn three_servers_two_workers_survive_kill_9() {
    let pg = skip_unless_env!("TEST_POSTGRES_URL");
    let redis = skip_unless_env!("TEST_REDIS_URL");
    let s3 = skip_unless_env!("TEST_S3_ENDPOINT");
    let bucket = skip_unless_env!("TEST_S3_BUCKET");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tag = format!("mn{:x}", rand::random::<u32>());
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[catalog]
backend = "postgres"
url = "{pg}"
namespace = "kiln_{tag}"
[queue]
backend = "postgres"
url = "{pg}"
namespace = "kiln_{tag}"
[cache]
backend = "redis"
url = "{redis}"
namespace = "kiln-{tag}"
[store]
backend = "s3"
endpoint = "{s3}"
bucket = "{bucket}"
prefix = "kiln-test-{tag}"
[load]
refresh_interval = "250ms"
[[library]]
name = "cards"
source = {{ course = "mn" }}
renderer = {{ command = ["sh", "-c", "cat; sleep 0.02"] }}
page_size = 50
"#
        ),
    )
    .unwrap();

    let mut spec = CourseSpec::new(120);
    spec.files_per_question = 4;
    spec.file_size = 1500;
    let repo = tmp.path().join("repo");
    write_git(&spec, &repo, false).expect("generating the course");
    let sync = |label: &str| {
        let out = ok(kiln(&data)
            .arg("--config")
            .arg(&cfg)
            .args(["--json", "sync"])
            .arg(&repo)
            .args(["--course", "mn"]));
        let v = json(&out);
        assert!(v["chunks_total"].as_u64().unwrap() > 120, "{label}: {v}");
        v["version"].as_str().unwrap().to_string()
    };
    let v1 = sync("first sync");

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut servers: Vec<(Option<Proc>, String)> = (0..3)
        .map(|i| {
            let (p, addr) = start_server_at(&data, &cfg, &tmp.path().join(format!("cache{i}")));
            (Some(p), addr)
        })
        .collect();

    // Every server serves the course's files, byte for byte.
    let files = shipped_files(&spec, 0);
    for (_, base) in &servers {
        for f in files.iter().step_by(7) {
            let resp = get(&client, &format!("{base}/v1/courses/mn/files/{}", f.path));
            assert_eq!(resp.status(), 200, "{base} {}", f.path);
            assert_eq!(
                resp.bytes().unwrap().as_ref(),
                &f.data[..],
                "{base} {}",
                f.path
            );
        }
        assert_eq!(current_version(&client, base).as_deref(), Some(v1.as_str()));
    }

    // A new version: every server switches within a second.
    commit_question_change(&spec, &repo, 0, 1).expect("committing a change");
    let v2 = sync("second sync");
    assert_ne!(v1, v2);
    let published = Instant::now();
    for (_, base) in &servers {
        while current_version(&client, base).as_deref() != Some(v2.as_str()) {
            assert!(
                published.elapsed() < Duration::from_secs(1),
                "{base} still serves {v1} one second after {v2} was published"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // The second sync started a reheat of `cards` (its source is the course). Two workers;
    // kill -9 one worker and one server midway.
    let mut workers = vec![
        Some(start_worker(&data, &cfg)),
        Some(start_worker(&data, &cfg)),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = run_status(&data, &cfg);
        if run["jobs_done"].as_u64().unwrap_or(0) >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the reheat never started: {run}");
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(mut w) = workers[0].take() {
        w.0.kill().unwrap(); // SIGKILL
        let _ = w.0.wait();
    }
    if let Some(mut s) = servers[2].0.take() {
        s.0.kill().unwrap();
        let _ = s.0.wait();
    }
    let run = loop {
        let run = run_status(&data, &cfg);
        if run["state"] != "running" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the reheat did not finish: {run}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(run["state"], "complete", "{run}");
    assert_eq!(run["jobs_dead"], 0, "{run}");
    assert!(
        run["jobs_done"].as_u64().unwrap()
            >= run["jobs_enqueued"].as_u64().unwrap() - run["jobs_dropped"].as_u64().unwrap(),
        "a job was lost: {run}"
    );
    let generation = run["generation"].as_u64().unwrap();

    // The survivors serve every file of the new version and every rendered card.
    let v2_files = shipped_files(&spec, 1);
    for (_, base) in servers.iter().take(2) {
        for f in &v2_files {
            let resp = get(&client, &format!("{base}/v1/courses/mn/files/{}", f.path));
            assert_eq!(resp.status(), 200, "{base} {}", f.path);
            assert_eq!(
                resp.bytes().unwrap().as_ref(),
                &f.data[..],
                "{base} {}",
                f.path
            );
        }
        for i in 0..spec.questions {
            let qid = spec.question_id(i);
            let resp = get(&client, &format!("{base}/v1/cache/cards/{qid}"));
            assert_eq!(resp.status(), 200, "{base}: card {qid} missing");
            let g = resp
                .headers()
                .get("x-kiln-generation")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            assert_eq!(
                g,
                Some(generation),
                "{base}: card {qid} is not at the run's generation"
            );
        }
    }

    // Nothing in the store or the catalog is left inconsistent: a fresh cache loads every
    // chunk of the current version, each verified against its id.
    let chunks = json(&ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "chunks", "mn"])));
    let all = crate::support::chunk_refs(&chunks);
    let ensured = json(&ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "ensure", "mn"])
        .args(&all)
        .arg("--cache-dir")
        .arg(tmp.path().join("fresh"))));
    assert_eq!(ensured["version"], v2.as_str());
    drop(workers);
    drop(servers);
}
