//! Helpers: run the built `kiln` binary, make a git repository of the example course.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The repository's root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `kiln` command over `data_dir`, quiet about backends.
pub(crate) fn kiln(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.arg("--data-dir").arg(data_dir).env("KILN_QUIET", "1");
    // The test's own environment must not pick backends for it.
    for (k, _) in std::env::vars() {
        if k.starts_with("KILN_") && k != "KILN_QUIET" {
            c.env_remove(k);
        }
    }
    c
}

/// Runs and returns the output, asserting success.
pub(crate) fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running kiln");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs and returns stderr, asserting failure.
pub(crate) fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running kiln");
    assert!(!out.status.success(), "{cmd:?} succeeded unexpectedly");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout as JSON.
pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs git in `dir`.
pub(crate) fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kiln",
            "-c",
            "user.email=kiln@example.invalid",
        ])
        .args(args)
        .status()
        .expect("running git");
    assert!(st.success(), "git {args:?} failed");
}

/// Copies a directory tree; symlinks stay symlinks.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &target);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), target).unwrap();
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A git repository holding the example course, one commit.
pub(crate) fn example_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("course-repo");
    copy_tree(&repo_root().join("examples/course"), &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "example course"]);
    repo
}

/// Polls `f` until it holds or `limit` passes; whether it held.
pub(crate) fn wait_until(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kiln ... serve --listen 127.0.0.1:0` from `cmd` and returns it with its base URL,
/// read from the first line of its stdout.
pub(crate) fn start_server(cmd: &mut Command, cache_dir: Option<&Path>) -> (Proc, String) {
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    if let Some(dir) = cache_dir {
        cmd.arg("--cache-dir").arg(dir);
    }
    let (child, line) = spawn_reading_first_line(cmd);
    let base = line.rsplit(' ').next().unwrap_or_default().to_string();
    assert!(
        base.starts_with("http://"),
        "unexpected first line {line:?}"
    );
    (child, base)
}

/// Spawns `cmd` (a `kiln serve`) and returns it with the first line of its stdout, trimmed:
/// `listening on <address>`.
pub(crate) fn spawn_reading_first_line(cmd: &mut Command) -> (Proc, String) {
    let mut child = Proc(cmd.stdout(Stdio::piped()).spawn().expect("starting kiln"));
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the first line");
    (child, line.trim().to_string())
}

/// A data directory under `dir` with the example course synced as `demo`.
pub(crate) fn synced_example(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let repo = example_repo(dir);
    ok(kiln(&data)
        .arg("sync")
        .arg(&repo)
        .args(["--course", "demo"]));
    data
}

/// Every chunk of a `kiln --json chunks` answer as `kiln ensure` takes it: `KIND:NAME`, or
/// `KIND` for a course-wide chunk.
pub(crate) fn chunk_refs(chunks: &serde_json::Value) -> Vec<String> {
    chunks["chunks"]
        .as_array()
        .expect("a chunks list")
        .iter()
        .map(|r| {
            let (k, n) = (r["kind"].as_str().unwrap(), r["name"].as_str().unwrap());
            if n.is_empty() {
                k.to_string()
            } else {
                format!("{k}:{n}")
            }
        })
        .collect()
}
