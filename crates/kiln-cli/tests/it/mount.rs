//! `kiln mount` as a user runs it: the example course against git's own bytes, modes and
//! links; what listing and reading download; a Python reader across two publishes; kill -9
//! and remount; SIGTERM; beside `kiln serve` on one cache directory, and inside it.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Proc, example_repo, git, json, kiln, ok, spawn_reading_first_line, start_server, wait_until,
};

/// Whether FUSE is here; `false` skips, unless `KILN_REQUIRE_FUSE=1` (CI), which fails.
fn fuse_or_skip(test: &str) -> bool {
    let here = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if !here && std::env::var("KILN_REQUIRE_FUSE").as_deref() == Ok("1") {
        panic!("{test}: FUSE is required (KILN_REQUIRE_FUSE=1) and /dev/fuse cannot be opened");
    }
    if !here {
        eprintln!("skipping {test}: /dev/fuse cannot be opened");
    }
    here
}

/// A process that mounts: dropped, it is stopped and its mountpoint unmounted, so that a
/// failing test leaves no mount behind.
struct Mounting(Proc, PathBuf);

impl Drop for Mounting {
    fn drop(&mut self) {
        if matches!(self.0.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.0.0.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.0.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_mounted(&self.1) {
            let _ = Command::new("umount").arg("-l").arg(&self.1).status();
        }
    }
}

/// Starts `kiln mount` and waits for its `mounted at` line.
fn start_mount(data: &Path, mnt: &Path, extra: &[&str]) -> Mounting {
    let mut cmd = kiln(data);
    cmd.arg("mount").arg(mnt).args(extra).stderr(Stdio::piped());
    let (p, line) = spawn_reading_first_line(&mut cmd);
    assert!(
        line.starts_with("mounted at "),
        "unexpected first line {line:?}"
    );
    Mounting(p, mnt.to_path_buf())
}

fn is_mounted(mnt: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mnt = mnt.to_str().unwrap();
    table.lines().any(|l| l.split(' ').nth(4) == Some(mnt))
}

/// Waits (at most 10 s) for a process to exit; its status.
fn wait_exit(p: &mut Proc) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "the mount did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(p: &Proc, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(p.0.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// The chunk directories in the cache.
fn chunks_on_disk(data: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(data.join("cache/courses/demo/.chunks")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// The id of question `name`'s chunk in the current version of `demo`.
fn question_chunk_id(data: &Path, name: &str) -> String {
    let chunks = json(&ok(kiln(data).args(["--json", "chunks", "demo"])));
    chunks["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "question" && c["name"] == name)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no question {name}: {chunks}"))
}

fn git_out(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    out.stdout
}

/// Every path below `dir` with its `stat` (links not followed).
fn stat_all(dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            stat_all(&p, out);
        }
        out.push((p, m));
    }
}

#[test]
fn the_example_course_mounts_with_gits_bytes_modes_and_links_and_loads_on_open() {
    if !fuse_or_skip("the_example_course_mounts_with_gits_bytes_modes_and_links_and_loads_on_open")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = example_repo(tmp.path());
    let data = tmp.path().join("data");
    ok(kiln(&data)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    let mnt = tmp.path().join("mnt");
    let _mount = start_mount(&data, &mnt, &["--course", "demo"]);
    let head = String::from_utf8(git_out(&repo, &["rev-parse", "HEAD"])).unwrap();
    let current = std::fs::read_link(mnt.join("demo/current")).unwrap();
    assert_eq!(current, PathBuf::from(head.trim()));

    // find and stat of the whole tree: nothing downloaded.
    let mut all = Vec::new();
    stat_all(&mnt.join("demo"), &mut all);
    assert!(all.len() > 50, "{} entries", all.len());
    assert!(
        chunks_on_disk(&data).is_empty(),
        "stat downloaded {:?}",
        chunks_on_disk(&data)
    );

    // One question's files: exactly its chunk.
    let q = mnt.join("demo/current/questions/algebra/linear");
    for f in [
        "question.html",
        "server.py",
        "info.json",
        "clientFilesQuestion/figure.svg",
    ] {
        std::fs::read(q.join(f)).unwrap();
    }
    let linear = question_chunk_id(&data, "algebra/linear");
    assert_eq!(
        chunks_on_disk(&data),
        BTreeSet::from([linear]),
        "reading one question loads its chunk only"
    );

    // Every file git has, with git's bytes, mode and link target.
    let tree = git_out(&repo, &["ls-tree", "-r", "-z", "HEAD"]);
    let mut outside = Vec::new();
    let mut seen = 0;
    for rec in tree.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rec = std::str::from_utf8(rec).unwrap();
        let (meta, path) = rec.split_once('\t').unwrap();
        let mut meta = meta.split(' ');
        let (mode, _, sha) = (
            meta.next().unwrap(),
            meta.next().unwrap(),
            meta.next().unwrap(),
        );
        let blob = git_out(&repo, &["cat-file", "blob", sha]);
        let at = mnt.join("demo/current").join(path);
        let Ok(m) = std::fs::symlink_metadata(&at) else {
            outside.push(path.to_string());
            continue;
        };
        seen += 1;
        match mode {
            "120000" => {
                assert!(m.file_type().is_symlink(), "{path} is not a link");
                assert_eq!(
                    std::fs::read_link(&at)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                    &blob[..],
                    "{path}"
                );
            }
            "100644" | "100755" => {
                assert!(m.is_file(), "{path}");
                let want = if mode == "100755" { 0o755 } else { 0o644 };
                assert_eq!(m.permissions().mode() & 0o777, want, "{path}");
                assert_eq!(std::fs::read(&at).unwrap(), blob, "{path}");
            }
            other => panic!("{path}: mode {other}"),
        }
    }
    assert!(seen > 50, "{seen} files compared");
    // A README beside the course is not course content: no chunk holds it.
    assert_eq!(outside, ["README.md"]);
}

#[test]
fn kill_9_then_mount_again_recovers_the_dead_mount_and_sigterm_unmounts() {
    if !fuse_or_skip("kill_9_then_mount_again_recovers_the_dead_mount_and_sigterm_unmounts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = crate::support::synced_example(tmp.path());
    let mnt = tmp.path().join("mnt");
    let file = mnt.join("demo/current/questions/algebra/linear/question.html");
    let mut first = start_mount(&data, &mnt, &[]);
    let want = std::fs::read(&file).unwrap();
    signal(&first.0, "KILL");
    wait_exit(&mut first.0);
    let dead = std::fs::read_dir(&mnt).unwrap_err();
    assert_eq!(dead.raw_os_error(), Some(libc::ENOTCONN), "{dead}");

    let mut second = start_mount(&data, &mnt, &[]);
    assert_eq!(std::fs::read(&file).unwrap(), want);

    // A file still open does not keep SIGTERM from unmounting and exiting.
    let held = std::fs::File::open(&file).unwrap();
    signal(&second.0, "TERM");
    let st = wait_exit(&mut second.0);
    assert!(st.success(), "{st}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.0.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("a dead mount was there"), "{stderr}");
    assert!(stderr.contains("unmounted"), "{stderr}");
    assert!(!is_mounted(&mnt), "still mounted after SIGTERM");
    drop(held);
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "the mountpoint is an empty directory again"
    );
}

#[test]
fn a_python_reader_sees_one_version_per_pass_across_two_publishes() {
    if !fuse_or_skip("a_python_reader_sees_one_version_per_pass_across_two_publishes") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = example_repo(tmp.path());
    let data = tmp.path().join("data");
    let q = "questions/algebra/linear";
    // Every file each round rewrites (info.json stays: sync reads it as JSON).
    let files = [
        "question.html",
        "server.py",
        "clientFilesQuestion/figure.svg",
    ];
    let round = |n: u32| {
        for f in files {
            std::fs::write(repo.join(q).join(f), format!("round {n} {f}\n")).unwrap();
        }
        git(&repo, &["commit", "-q", "-am", &format!("round {n}")]);
        ok(kiln(&data)
            .arg("sync")
            .arg(&repo)
            .args(["--course", "demo"]));
    };
    round(0);
    let mnt = tmp.path().join("mnt");
    let _mount = start_mount(&data, &mnt, &[]);
    let stop = tmp.path().join("stop");
    // Resolve `current` once per pass (a directory descriptor), read every file through it.
    let script = r#"
import json, os, sys, time
mnt, q, stop = sys.argv[1], sys.argv[2], sys.argv[3]
files = sys.argv[4:]
deadline = time.time() + 300
while not os.path.exists(stop) and time.time() < deadline:
    d = os.open(os.path.join(mnt, "demo/current", q), os.O_RDONLY | os.O_DIRECTORY)
    version = os.readlink(f"/proc/self/fd/{d}").split("/demo/")[1].split("/")[0]
    rounds = []
    for f in files:
        fd = os.open(f, os.O_RDONLY, dir_fd=d)
        rounds.append(os.read(fd, 1 << 16).decode().split()[1])
        os.close(fd)
    os.close(d)
    print(json.dumps({"version": version, "rounds": rounds}), flush=True)
    time.sleep(0.005)
"#;
    let out_path = tmp.path().join("passes.jsonl");
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(script)
        .arg(&mnt)
        .arg(q)
        .arg(&stop)
        .args(files)
        .stdout(std::fs::File::create(&out_path).unwrap());
    let mut reader = Proc(py.spawn().expect("python3"));
    // Each publish waits until the reader has seen the round before it: load decides how
    // long that takes, never whether it happens.
    let seen = |n: u32| {
        let want = format!("\"rounds\": [\"{n}\"");
        wait_until(Duration::from_secs(120), || {
            std::fs::read_to_string(&out_path).is_ok_and(|o| o.contains(&want))
        })
    };
    assert!(seen(0), "the reader never saw round 0");
    round(1);
    assert!(seen(1), "the reader never saw round 1");
    round(2);
    assert!(seen(2), "the reader never saw round 2");
    std::fs::write(&stop, "").unwrap();
    assert!(wait_exit(&mut reader).success());
    let out = std::fs::read_to_string(&out_path).unwrap();
    let mut by_version = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    let passes: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(passes.len() > 20, "{} passes", passes.len());
    for p in &passes {
        let rounds: BTreeSet<String> = p["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        assert_eq!(rounds.len(), 1, "a pass mixed versions: {p}");
        by_version
            .entry(p["version"].as_str().unwrap().to_string())
            .or_default()
            .extend(rounds);
    }
    // Three versions seen, each always with its own content.
    assert_eq!(by_version.len(), 3, "{by_version:?}");
    let mut rounds: Vec<String> = by_version
        .values()
        .map(|r| {
            assert_eq!(r.len(), 1, "{by_version:?}");
            r.iter().next().unwrap().clone()
        })
        .collect();
    rounds.sort();
    assert_eq!(rounds, ["0", "1", "2"]);
}

#[test]
fn a_mount_beside_kiln_serve_and_one_inside_it_share_the_cache() {
    if !fuse_or_skip("a_mount_beside_kiln_serve_and_one_inside_it_share_the_cache") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = crate::support::synced_example(tmp.path());
    let (_server, base) = start_server(&mut kiln(&data), None);
    let mnt = tmp.path().join("mnt");
    let _mount = start_mount(&data, &mnt, &[]);
    let rel = "questions/algebra/linear/question.html";
    let via_http = http_get(&format!("{base}/v1/courses/demo/files/{rel}"));
    let via_mount = std::fs::read(mnt.join("demo/current").join(rel)).unwrap();
    assert_eq!(via_http, via_mount);
    assert_eq!(
        chunks_on_disk(&data).len(),
        1,
        "one chunk on disk for both processes"
    );

    // Inside `kiln serve`: one process, one cache; its metrics count the mount's opens.
    let mnt2 = tmp.path().join("mnt2");
    let mut cmd = kiln(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--mount"])
        .arg(&mnt2);
    let (both, line) = spawn_reading_first_line(&mut cmd);
    let _both = Mounting(both, mnt2.clone());
    let base2 = line.rsplit(' ').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mounted(&mnt2) {
        assert!(
            Instant::now() < deadline,
            "kiln serve --mount did not mount"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read(mnt2.join("demo/current").join(rel)).unwrap(),
        via_mount
    );
    let metrics = String::from_utf8(http_get(&format!("{base2}/metrics"))).unwrap();
    assert!(metrics.contains("kiln_mount_opens_total 1"), "{metrics}");
}

#[test]
fn a_course_in_postgresql_and_s3_mounts_and_loads_from_s3_on_open() {
    let pg = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let s3 = kiln_testkit::skip_unless_env!("TEST_S3_ENDPOINT");
    let bucket = kiln_testkit::skip_unless_env!("TEST_S3_BUCKET");
    if !fuse_or_skip("a_course_in_postgresql_and_s3_mounts_and_loads_from_s3_on_open") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("mnt{:x}", rand::random::<u32>());
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(
        &cfg,
        format!(
            "[catalog]\nbackend = \"postgres\"\nurl = \"{pg}\"\nnamespace = \"kiln_{tag}\"\n\
             [store]\nbackend = \"s3\"\nendpoint = \"{s3}\"\nbucket = \"{bucket}\"\nprefix = \"kiln-test-{tag}\"\n\
             [load]\nrefresh_interval = \"1h\"\n"
        ),
    )
    .unwrap();
    let repo = example_repo(tmp.path());
    let data = tmp.path().join("data");
    ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    let mnt = tmp.path().join("mnt");
    let _mount = start_mount(&data, &mnt, &["--config", cfg.to_str().unwrap()]);
    let mut all = Vec::new();
    stat_all(&mnt.join("demo/current"), &mut all);
    assert!(all.len() > 50, "{} entries", all.len());
    assert!(chunks_on_disk(&data).is_empty(), "stat downloaded a chunk");
    let rel = "questions/probability/dice/tests/check.sh";
    let m = std::fs::metadata(mnt.join("demo/current").join(rel)).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read(mnt.join("demo/current").join(rel)).unwrap(),
        std::fs::read(repo.join(rel)).unwrap()
    );
    assert_eq!(
        chunks_on_disk(&data).len(),
        1,
        "one question's chunk from S3"
    );

    // A new version: with refreshes an hour apart, only PostgreSQL's announcement can
    // flip `current` within the bound.
    std::fs::write(repo.join(rel), "#!/bin/sh\nexit 1\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "v2"]);
    ok(kiln(&data)
        .arg("--config")
        .arg(&cfg)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    let head = String::from_utf8(git_out(&repo, &["rev-parse", "HEAD"])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(mnt.join("demo/current")).unwrap() != Path::new(head.trim()) {
        assert!(
            Instant::now() < deadline,
            "current did not flip on the announcement"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read(mnt.join("demo/current").join(rel)).unwrap(),
        b"#!/bin/sh\nexit 1\n"
    );
}

#[test]
fn a_chunk_the_store_lost_is_eio_with_the_reason_on_the_mounts_metrics() {
    if !fuse_or_skip("a_chunk_the_store_lost_is_eio_with_the_reason_on_the_mounts_metrics") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = crate::support::synced_example(tmp.path());
    // The store loses one question's bundle.
    let id = question_chunk_id(&data, "algebra/quadratic");
    let bundle = data.join(format!("objects/chunks/{}/{id}.tar.zst", &id[..2]));
    std::fs::remove_file(&bundle).unwrap();

    let mnt = tmp.path().join("mnt");
    let mut cmd = kiln(&data);
    cmd.arg("mount")
        .arg(&mnt)
        .args(["--metrics", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    let (p, line) = spawn_reading_first_line(&mut cmd);
    let mut mount = Mounting(p, mnt.clone());
    assert!(line.starts_with("mounted at "), "{line:?}");
    let stderr = mount.0.0.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let base = loop {
        let l = lines.next().expect("a metrics line on stderr").unwrap();
        if let Some(url) = l.strip_prefix("metrics on ") {
            break url.to_string();
        }
    };
    let q = mnt.join("demo/current/questions/algebra/quadratic");
    assert!(
        std::fs::metadata(q.join("question.html")).is_ok(),
        "stat needs no bundle"
    );
    let err = std::fs::read(q.join("question.html")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Another question still loads.
    std::fs::read(mnt.join("demo/current/questions/algebra/linear/question.html")).unwrap();
    let metrics = String::from_utf8(http_get(&format!("{base}/metrics"))).unwrap();
    assert!(
        metrics.contains("kiln_mount_open_errors_total{reason=\"not_found\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kiln_mount_opens_total 1"), "{metrics}");
    assert!(metrics.contains("kiln_load_downloads_total 1"), "{metrics}");
    // The reason is in the log too, naming the chunk and the file.
    let log = loop {
        let l = lines.next().expect("the open's warning").unwrap();
        if l.contains("open failed") {
            break l;
        }
    };
    assert!(log.contains("question:algebra/quadratic"), "{log}");
    assert!(log.contains("question.html"), "{log}");
    assert!(log.contains("not found"), "{log}");
}

#[test]
fn two_mounts_and_a_server_started_together_on_a_fresh_data_directory_serve_its_first_sync() {
    if !fuse_or_skip(
        "two_mounts_and_a_server_started_together_on_a_fresh_data_directory_serve_its_first_sync",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (m1, m2) = (tmp.path().join("m1"), tmp.path().join("m2"));
    // All three open the same new catalog and cache directory at once.
    let starting = [
        std::thread::spawn({
            let (d, m) = (data.clone(), m1.clone());
            move || start_mount(&d, &m, &[])
        }),
        std::thread::spawn({
            let (d, m) = (data.clone(), m2.clone());
            move || start_mount(&d, &m, &["--no-hold"])
        }),
    ];
    let (_server, base) = start_server(&mut kiln(&data), None);
    let _mounts: Vec<Mounting> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        std::fs::read_dir(&m1).unwrap().next().is_none(),
        "no course yet"
    );

    let repo = example_repo(tmp.path());
    ok(kiln(&data)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    let rel = "questions/algebra/linear/question.html";
    let want = std::fs::read(repo.join(rel)).unwrap();
    for m in [&m1, &m2] {
        let file = m.join("demo/current").join(rel);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} never showed the course",
                m.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read(&file).unwrap(), want);
    }
    assert_eq!(
        http_get(&format!("{base}/v1/courses/demo/files/{rel}")),
        want
    );
    assert_eq!(
        chunks_on_disk(&data),
        BTreeSet::from([question_chunk_id(&data, "algebra/linear")]),
        "three processes, one chunk on disk"
    );
}

#[test]
fn mount_options_of_kiln_serve_without_a_mountpoint_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = crate::support::fails(kiln(tmp.path()).args(["serve", "--no-hold"]));
    assert!(
        err.contains("--mount MOUNTPOINT, which is missing"),
        "{err}"
    );
}

#[test]
fn a_mountpoint_that_is_a_file_is_refused_by_name() {
    if !fuse_or_skip("a_mountpoint_that_is_a_file_is_refused_by_name") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = crate::support::synced_example(tmp.path());
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = crate::support::fails(kiln(&data).arg("mount").arg(&file));
    assert!(err.contains("is not a directory"), "{err}");
    assert!(err.contains("not-a-dir"), "{err}");
}

fn http_get(url: &str) -> Vec<u8> {
    let resp = reqwest::blocking::get(url).unwrap();
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.bytes().unwrap().to_vec()
}
