//! The fault suite: bounded rounds of everything at once, with random timing and kill -9.
//!
//! Each round: a sync host publishes a new commit of course `fa` and a brand-new course
//! `fbN` (either sync may be killed and is then run again); `kiln gc --grace 0s` runs in a
//! loop (sometimes killed); two servers with a budget below the working set serve readers
//! that ensure a question and read its files from disk (the way PrairieLearn does); two
//! workers drain a reheat whose listing spans many pages (one worker is killed and
//! restarted). After the round: every retained version of every course verifies whole,
//! every course's current version loads whole into a fresh cache, no reader saw a missing
//! or mixed-version file, the run completed with exact counters, no page was listed again
//! except one in flight at a kill, and no sync lock is left held.
//!
//! On the embedded default always; on PostgreSQL + Redis + S3 when `TEST_POSTGRES_URL`,
//! `TEST_REDIS_URL`, `TEST_S3_ENDPOINT` and `TEST_S3_BUCKET` are set (as `.ci/run` does).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_core::catalog::Catalog;
use kiln_core::ids::CourseId;
use kiln_testkit::course_gen::{CourseSpec, GenFile, commit_files, question_files, write_git};

use crate::support::{Proc, json, kiln, ok, start_server};

/// Pages of the reheat's listing and items per page.
const PAGES: u64 = 12;
const PAGE_SIZE: u64 = 10;

/// Lanes of a `kiln worker` (batches it runs at once): the pages a kill may list again.
const LANES: u64 = 2;

/// A listing server on loopback: `GET /items?page=N` answers page N of `PAGES`, counting
/// how often each page is asked for.
struct Listing {
    url: String,
    hits: Arc<Mutex<HashMap<u64, u64>>>,
}

impl Listing {
    fn start() -> Listing {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/items", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let h = h.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    let page: u64 = line
                        .split(['?', '&', ' '])
                        .find_map(|p| p.strip_prefix("page="))
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    *h.lock().unwrap().entry(page).or_insert(0) += 1;
                    let items: Vec<serde_json::Value> = (0..PAGE_SIZE)
                        .map(|i| {
                            let n = page * PAGE_SIZE + i;
                            serde_json::json!({
                                "key": format!("item{n:04}"),
                                "group": format!("g{}", n % 3),
                                "props": {"n": n},
                            })
                        })
                        .collect();
                    let next = (page + 1 < PAGES).then_some(page + 1);
                    let body = serde_json::json!({"items": items, "next": next}).to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Listing { url, hits }
    }

    fn take_hits(&self) -> HashMap<u64, u64> {
        std::mem::take(&mut *self.hits.lock().unwrap())
    }
}

/// Where the rig's backends are.
enum Backends {
    Embedded,
    Fleet {
        pg: String,
        redis: String,
        s3: String,
        bucket: String,
    },
}

/// What the suite did, printed at the end.
#[derive(Default)]
struct Tally {
    kills: HashMap<&'static str, usize>,
    reads: AtomicU64,
    files_read: AtomicU64,
    checks: Vec<String>,
}

struct Rig {
    tmp: tempfile::TempDir,
    data: PathBuf,
    cfg: PathBuf,
    tag: String,
    backends: Backends,
}

impl Rig {
    fn new(backends: Backends, listing: &Listing) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let tag = format!("fault{:x}", rand::random::<u32>());
        let cfg = tmp.path().join("kiln.toml");
        let mut text = match &backends {
            Backends::Embedded => String::new(),
            Backends::Fleet {
                pg,
                redis,
                s3,
                bucket,
            } => format!(
                r#"
[catalog]
backend = "postgres"
url = "{pg}"
namespace = "kiln_test_{tag}"
[queue]
backend = "postgres"
url = "{pg}"
namespace = "kiln_test_{tag}"
[cache]
backend = "redis"
url = "{redis}"
namespace = "kiln_test_{tag}"
[store]
backend = "s3"
endpoint = "{s3}"
bucket = "{bucket}"
prefix = "kiln-test-{tag}"
"#
            ),
        };
        text.push_str(&format!(
            r#"
[load]
refresh_interval = "100ms"
[[library]]
name = "pages"
source = {{ http = "{}" }}
renderer = {{ command = ["sh", "-c", "cat; sleep 0.005"] }}
page_size = {PAGE_SIZE}
"#,
            listing.url
        ));
        std::fs::write(&cfg, text).unwrap();
        Rig {
            tmp,
            data,
            cfg,
            tag,
            backends,
        }
    }

    fn kiln(&self) -> Command {
        let mut c = kiln(&self.data);
        c.arg("--config").arg(&self.cfg);
        c
    }

    async fn catalog(&self) -> Arc<dyn Catalog> {
        match &self.backends {
            Backends::Embedded => Arc::new(
                kiln_sqlite::DataDir::new(&self.data)
                    .catalog()
                    .await
                    .unwrap(),
            ),
            Backends::Fleet { pg, .. } => Arc::new(
                kiln_postgres::PgCatalog::connect(pg, Some(&format!("kiln_test_{}", self.tag)))
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// Runs `cmd`; with probability `p_kill`, kills it with SIGKILL after a random delay and
/// then runs it again to completion. Returns whether it killed.
fn run_maybe_killed(mut make: impl FnMut() -> Command, p_kill: f64, max_delay_ms: u64) -> bool {
    if rand::random_bool(p_kill) {
        let mut c = make();
        let mut child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rand::random_range(0..max_delay_ms)));
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        ok(&mut make());
        killed
    } else {
        ok(&mut make());
        false
    }
}

fn start_worker(rig: &Rig) -> Proc {
    Proc(
        rig.kiln()
            .args(["worker", "--concurrency", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Version id -> the round whose content it holds, for the readers' mixed-version check.
type Rounds = Arc<Mutex<HashMap<String, u64>>>;

/// Reader threads against one server: ensure a question, read each of its files from disk.
fn start_readers(
    base: String,
    spec: Arc<CourseSpec>,
    rounds: Rounds,
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    tally: Arc<Tally>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..3)
        .map(|_| {
            let (base, spec, rounds, stop, failures, tally) = (
                base.clone(),
                spec.clone(),
                rounds.clone(),
                stop.clone(),
                failures.clone(),
                tally.clone(),
            );
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let i = rand::random_range(0..spec.questions);
                    let qid = spec.question_id(i);
                    let resp = client
                        .post(format!("{base}/v1/courses/fa/ensure"))
                        .json(&serde_json::json!({"chunks": [format!("question:{qid}")]}))
                        .send();
                    let Ok(resp) = resp else { continue };
                    if !resp.status().is_success() {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("ensure {qid}: {}", resp.status()));
                        continue;
                    }
                    let v: serde_json::Value = resp.json().unwrap();
                    let root = PathBuf::from(v["root"].as_str().unwrap());
                    let version = v["version"].as_str().unwrap().to_string();
                    let round = rounds.lock().unwrap().get(&version).copied();
                    // The rounds whose content every file read so far matches (a bit per
                    // round): a question read whole from one version leaves at least one.
                    let mut possible: u64 = u64::MAX;
                    for f in question_files(&spec, i, 0) {
                        match std::fs::read(root.join(&f.path)) {
                            Ok(bytes) => {
                                tally.files_read.fetch_add(1, Ordering::Relaxed);
                                possible &= rounds_with(&spec, i, &f.path, &bytes);
                            }
                            Err(e) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{version} {}: {e}", f.path)),
                        }
                    }
                    if possible == 0 {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{version} {qid}: files of different rounds"));
                    } else if let Some(r) = round
                        && possible & (1 << r) == 0
                    {
                        failures.lock().unwrap().push(format!(
                            "{version} {qid}: not the content of round {r}, the version's"
                        ));
                    }
                    tally.reads.fetch_add(1, Ordering::Relaxed);
                    if let Some(lease) = v["lease"]["id"].as_str() {
                        let _ = client.delete(format!("{base}/v1/leases/{lease}")).send();
                    }
                }
            })
        })
        .collect()
}

/// The rounds (a bit each, 0..64) in which question `i`'s file `path` has these bytes.
fn rounds_with(spec: &CourseSpec, i: usize, path: &str, bytes: &[u8]) -> u64 {
    (0..64u64)
        .filter(|r| {
            question_files(spec, i, *r)
                .iter()
                .any(|g| g.path == path && g.data == bytes)
        })
        .fold(0, |m, r| m | (1 << r))
}

fn run_status(rig: &Rig) -> serde_json::Value {
    let runs = json(&ok(rig
        .kiln()
        .args(["--json", "runs", "pages", "--limit", "1"])));
    runs["runs"][0].clone()
}

fn fault_rounds(backends: Backends, rounds: u64) {
    let listing = Listing::start();
    let rig = Rig::new(backends, &listing);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let kill = |what: &'static str| {
        *tally.lock().unwrap().kills.entry(what).or_insert(0) += 1;
    };
    let check = |what: String| tally.lock().unwrap().checks.push(what);

    let mut spec = CourseSpec::new(40);
    spec.files_per_question = 4;
    spec.file_size = 2000;
    spec.questions_per_topic = 10;
    let spec = Arc::new(spec);
    let repo = rig.tmp.path().join("fa");
    write_git(&spec, &repo, false).unwrap();
    let rounds_of: Rounds = Arc::new(Mutex::new(HashMap::new()));
    let sync_a = || {
        let mut c = rig.kiln();
        c.args(["--json", "sync"])
            .arg(&repo)
            .args(["--course", "fa"]);
        c
    };
    let v0 = json(&ok(&mut sync_a()))["version"]
        .as_str()
        .unwrap()
        .to_string();
    rounds_of.lock().unwrap().insert(v0, 0);

    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader_tally = Arc::new(Tally::default());
    // Two servers, each with a budget well below the working set: about 8 of its ~40
    // questions, at some 25 kB each on disk (4 kB blocks and an inode per file), so that
    // its three readers' leases fit while most questions are evicted and fetched again.
    let mut servers = Vec::new();
    let mut readers = Vec::new();
    for i in 0..2 {
        let mut cmd = rig.kiln();
        cmd.env("KILN_LOAD_BUDGET", "200000");
        let (p, base) = start_server(&mut cmd, Some(&rig.tmp.path().join(format!("cache{i}"))));
        readers.extend(start_readers(
            base,
            spec.clone(),
            rounds_of.clone(),
            stop.clone(),
            failures.clone(),
            reader_tally.clone(),
        ));
        servers.push(p);
    }
    let mut workers = vec![start_worker(&rig), start_worker(&rig)];

    for round in 1..=rounds {
        // The reheat of this round, drained by the workers while everything else happens.
        let started = json(&ok(rig.kiln().args([
            "--json",
            "reheat",
            "pages",
            "--build",
            &format!("r{round}"),
        ])));
        let run_id = started["run"].clone();
        // One worker is killed while the listing is being walked, and restarted.
        std::thread::sleep(Duration::from_millis(rand::random_range(0..300)));
        let victim = rand::random_range(0..workers.len());
        let _ = workers[victim].0.kill();
        let _ = workers[victim].0.wait();
        kill("worker");
        workers[victim] = start_worker(&rig);
        let gc_stop = Arc::new(AtomicBool::new(false));
        let gc_kills = Arc::new(AtomicUsize::new(0));
        let gc_thread = {
            let (gc_stop, gc_kills) = (gc_stop.clone(), gc_kills.clone());
            let (data, cfg) = (rig.data.clone(), rig.cfg.clone());
            std::thread::spawn(move || {
                while !gc_stop.load(Ordering::Relaxed) {
                    let mut c = kiln(&data);
                    c.arg("--config").arg(&cfg).args(["gc", "--grace", "0s"]);
                    let mut child = c
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    if rand::random_bool(0.3) {
                        std::thread::sleep(Duration::from_millis(rand::random_range(0..200)));
                        if child.try_wait().unwrap().is_none() {
                            gc_kills.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = child.kill();
                    }
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(rand::random_range(0..100)));
                }
            })
        };

        // The sync host: a new commit of `fa` (every question's files change), and a new
        // course `fbN`; either sync may be killed and is then run again.
        let files: Vec<GenFile> = (0..spec.questions)
            .flat_map(|i| question_files(&spec, i, round))
            .collect();
        commit_files(&repo, &format!("round {round}"), &files).unwrap();
        if run_maybe_killed(sync_a, 0.6, 150) {
            kill("sync");
        }
        let v = json(&ok(&mut sync_a()))["version"]
            .as_str()
            .unwrap()
            .to_string();
        rounds_of.lock().unwrap().insert(v, round);
        let mut bspec = CourseSpec::new(15);
        bspec.files_per_question = 4;
        bspec.file_size = 1500;
        bspec.seed = 1000 + round;
        let brepo = rig.tmp.path().join(format!("fb{round}"));
        write_git(&bspec, &brepo, false).unwrap();
        let course_b = format!("fb{round}");
        let sync_b = || {
            let mut c = rig.kiln();
            c.args(["sync"]).arg(&brepo).args(["--course", &course_b]);
            c
        };
        if run_maybe_killed(sync_b, 0.6, 150) {
            kill("sync");
        }

        // The run ends, completed, with exact counters.
        let deadline = Instant::now() + Duration::from_secs(240);
        let run = loop {
            let run = run_status(&rig);
            if run["state"] != "running" {
                break run;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the run did not end: {run}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        gc_stop.store(true, Ordering::Relaxed);
        gc_thread.join().unwrap();
        for _ in 0..gc_kills.load(Ordering::Relaxed) {
            kill("gc");
        }
        assert_eq!(run["run"], run_id, "round {round}: {run}");
        assert_eq!(run["state"], "complete", "round {round}: {run}");
        assert_eq!(run["jobs_dead"], 0, "round {round}: {run}");
        let want = 1 + PAGES + PAGES * PAGE_SIZE;
        assert_eq!(
            run["jobs_enqueued"].as_u64(),
            Some(want),
            "round {round}: each page's jobs are created once: {run}"
        );
        check(format!(
            "round {round}: run complete with {want} jobs created once"
        ));

        // Each page listed once, but for those in flight at the worker's kill.
        let hits = listing.take_hits();
        let extra: u64 = hits.values().map(|n| n - 1).sum();
        for page in 0..PAGES {
            assert!(
                hits.get(&page).is_some_and(|n| *n >= 1),
                "round {round}: page {page} never listed: {hits:?}"
            );
        }
        // A producer is acked with the batch it ran in, so a killed worker's batches in
        // flight (one per lane, two lanes) may each list their page again: at most 2.
        assert!(
            extra <= LANES,
            "round {round}: pages listed again: {hits:?}"
        );
        check(format!(
            "round {round}: {PAGES} pages listed, {extra} again after the kill"
        ));

        // Every retained version of every course verifies whole.
        let verified = json(&ok(rig.kiln().args(["--json", "verify"])));
        assert_eq!(verified["still_bad"], 0, "round {round}: {verified}");
        check(format!(
            "round {round}: {} objects of {} versions verified",
            verified["objects_checked"], verified["versions_checked"]
        ));

        // Every course's current version loads whole into a fresh cache.
        let mut names = vec!["fa".to_string()];
        names.extend((1..=round).map(|r| format!("fb{r}")));
        for course in &names {
            let chunks = json(&ok(rig.kiln().args(["--json", "chunks", course])));
            let all = crate::support::chunk_refs(&chunks);
            let fresh = rig.tmp.path().join(format!("fresh-{round}-{course}"));
            ok(rig
                .kiln()
                .args(["--json", "ensure", course])
                .args(&all)
                .arg("--cache-dir")
                .arg(&fresh));
            let _ = std::fs::remove_dir_all(&fresh);
        }
        check(format!(
            "round {round}: {} courses load whole in a fresh cache",
            names.len()
        ));

        // No lock is left held.
        rt.block_on(async {
            let catalog = rig.catalog().await;
            for course in &names {
                let c = CourseId::new(course.as_str()).unwrap();
                let held = catalog.lock_holder(&format!("sync:{c}")).await.unwrap();
                assert_eq!(
                    held, None,
                    "round {round}: the sync lock of {course} is held"
                );
            }
        });
        check(format!("round {round}: no sync lock held"));
        let seen = failures.lock().unwrap().clone();
        assert!(
            seen.is_empty(),
            "round {round}: readers saw {} bad reads: {:?}",
            seen.len(),
            &seen[..seen.len().min(10)]
        );
        check(format!(
            "round {round}: readers: {} ensures, {} files read, none missing or mixed",
            reader_tally.reads.load(Ordering::Relaxed),
            reader_tally.files_read.load(Ordering::Relaxed)
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    drop(workers);
    drop(servers);
    let t = tally.lock().unwrap();
    println!(
        "fault suite: {rounds} rounds, kills {:?}, {} checks:",
        t.kills,
        t.checks.len()
    );
    for c in &t.checks {
        println!("  {c}");
    }
}

#[test]
fn faults_on_the_embedded_default() {
    fault_rounds(Backends::Embedded, 6);
}

#[test]
fn faults_on_postgres_redis_s3() {
    let pg = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let redis = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let s3 = kiln_testkit::skip_unless_env!("TEST_S3_ENDPOINT");
    let bucket = kiln_testkit::skip_unless_env!("TEST_S3_BUCKET");
    fault_rounds(
        Backends::Fleet {
            pg,
            redis,
            s3,
            bucket,
        },
        4,
    );
}
