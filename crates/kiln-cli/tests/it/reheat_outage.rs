//! `kiln reheat --wait --work` over a PostgreSQL that goes away for a while: a TCP proxy in
//! front of `TEST_POSTGRES_URL` is cut while the run is under way (its first page held by
//! the listing), so every connection is refused, and restored. The waiter says on stderr
//! that it tries again, and exits 0 with the run complete and its counts exact. Skipped,
//! saying so, without `TEST_POSTGRES_URL`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_testkit::proxy::Proxy;
use kiln_testkit::skip_unless_env;

use crate::support::{Proc, kiln, wait_until};

/// Pages of the listing and items per page.
const PAGES: u64 = 3;
const PAGE_SIZE: u64 = 10;

/// A listing on loopback whose first page is held until the test opens the gate.
struct GatedListing {
    url: String,
    /// Whether a request for the first page is waiting at the gate.
    waiting: Arc<AtomicBool>,
    open: Arc<AtomicBool>,
}

impl GatedListing {
    fn start() -> GatedListing {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/items", listener.local_addr().unwrap());
        let waiting = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicBool::new(false));
        let (w, o) = (waiting.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (w, o) = (w.clone(), o.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
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
                    if page == 0 {
                        w.store(true, Ordering::SeqCst);
                        while !o.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    let items: Vec<serde_json::Value> = (0..PAGE_SIZE)
                        .map(|i| {
                            let n = page * PAGE_SIZE + i;
                            serde_json::json!({"key": format!("item{n:03}"), "props": {"n": n}})
                        })
                        .collect();
                    let next = (page + 1 < PAGES).then_some(page + 1);
                    let body = serde_json::json!({"items": items, "next": next}).to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        GatedListing { url, waiting, open }
    }
}

/// `postgres://user@host:port/db` -> (host:port, the same URL through `via`).
fn split_url(url: &str, via: Option<SocketAddr>) -> (SocketAddr, String) {
    let (head, rest) = url
        .split_once('@')
        .expect("a TEST_POSTGRES_URL with user@host");
    let (hostport, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let target: SocketAddr = hostport
        .parse()
        .expect("TEST_POSTGRES_URL with an IP:port host");
    (target, format!("{head}@{}/{tail}", via.unwrap_or(target)))
}

#[test]
fn a_waiter_rides_out_a_postgres_that_refuses_for_a_while() {
    let url = skip_unless_env!("TEST_POSTGRES_URL");
    let (target, _) = split_url(&url, None);
    let proxy = Proxy::start(target).unwrap();
    let (_, proxied) = split_url(&url, Some(proxy.addr()));
    let listing = GatedListing::start();
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("kiln_test_wait{:x}", rand::random::<u32>());
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[catalog]
backend = "postgres"
url = "{proxied}"
namespace = "{tag}"

[queue]
backend = "postgres"
url = "{proxied}"
namespace = "{tag}"

[[library]]
name = "guides"
source = {{ http = "{}" }}
renderer = {{ command = ["cat"] }}
page_size = {PAGE_SIZE}
"#,
            listing.url
        ),
    )
    .unwrap();
    let mut child = Proc(
        kiln(&tmp.path().join("data"))
            .arg("--config")
            .arg(&cfg)
            .args(["--json", "reheat", "guides", "--wait", "--work"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kiln reheat"),
    );
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    std::thread::spawn({
        let stderr = stderr.clone();
        move || {
            lines
                .map_while(Result::ok)
                .for_each(|l| stderr.lock().unwrap().push(l))
        }
    });
    let retries = || {
        let lines = stderr.lock().unwrap();
        lines.iter().filter(|l| l.contains("trying again")).count()
    };

    assert!(
        wait_until(Duration::from_secs(60), || listing
            .waiting
            .load(Ordering::SeqCst)),
        "the run never asked for its first page: {:?}",
        stderr.lock().unwrap()
    );
    proxy.cut();
    let cut = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || retries() >= 3),
        "the waiter did not say it tries again: {:?}",
        stderr.lock().unwrap()
    );
    proxy.restore();
    eprintln!("postgres refused connections for {:?}", cut.elapsed());
    listing.open.store(true, Ordering::SeqCst);

    assert!(
        wait_until(Duration::from_secs(120), || matches!(
            child.0.try_wait(),
            Ok(Some(_))
        )),
        "kiln reheat --wait did not end: {:?}",
        stderr.lock().unwrap()
    );
    let status = child.0.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(
        status.success(),
        "kiln reheat --wait failed: {stdout}\n{:?}",
        stderr.lock().unwrap()
    );
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["state"], "complete", "{out}");
    let jobs = 1 + PAGES + PAGES * PAGE_SIZE;
    assert_eq!(
        (&out["jobs_enqueued"], &out["jobs_done"], &out["jobs_dead"]),
        (&jobs.into(), &jobs.into(), &0.into()),
        "{out}"
    );
    assert_eq!(out["summary"]["renders"], PAGES * PAGE_SIZE, "{out}");
    let said = stderr.lock().unwrap().clone();
    let line = said.iter().find(|l| l.contains("trying again")).unwrap();
    assert!(
        line.contains("waiting for run") && line.contains("unavailable"),
        "{line}"
    );
}
