//! `kiln serve` secured: tokens from the config (made by `kiln token new`), the refusal to
//! serve a public address without them, and a Unix socket with its file mode.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::support::{
    fails, json, kiln, ok, spawn_reading_first_line, start_server, synced_example,
};

fn with_config(data: &std::path::Path, cfg: &std::path::Path) -> Command {
    let mut c = kiln(data);
    c.arg("--config").arg(cfg);
    c
}

#[test]
fn serve_refuses_a_public_address_without_tokens_unless_told() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let err = fails(kiln(&data).args(["serve", "--listen", "0.0.0.0:0"]));
    for part in [
        "0.0.0.0:0",
        "without tokens",
        "kiln token new",
        "allow_unauthenticated",
    ] {
        assert!(err.contains(part), "{part} in {err}");
    }
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(&cfg, "[server]\nallow_unauthenticated = true\n").unwrap();
    let mut serve = with_config(&data, &cfg);
    serve.args(["serve", "--listen", "0.0.0.0:0"]);
    let (_child, line) = spawn_reading_first_line(&mut serve);
    assert!(line.starts_with("listening on http://0.0.0.0:"), "{line}");
}

#[test]
fn tokens_in_the_config_guard_the_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synced_example(tmp.path());
    let made = json(&ok(kiln(&data).args([
        "--json",
        "token",
        "new",
        "app",
        "--scopes",
        "read,ensure",
    ])));
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kiln_") && token.len() > 40, "{made}");
    assert_eq!(made["scopes"], serde_json::json!(["read", "ensure"]));
    // `kiln token hash` gives the same hash for the token.
    let mut hash = kiln(&data);
    hash.args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = hash.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), made["hash"]);

    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[token]]\nname = \"app\"\nscopes = [\"read\", \"ensure\"]\nhash = \"{}\"\n\
             [[token]]\nname = \"ops\"\nscopes = [\"admin\"]\nenv = \"OPS_TOKEN\"\n",
            made["hash"].as_str().unwrap()
        ),
    )
    .unwrap();
    // The env token's variable is missing: the server does not start, and says which.
    let err = fails(with_config(&data, &cfg).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(
        err.contains("\"ops\"") && err.contains("OPS_TOKEN"),
        "{err}"
    );

    let mut serve = with_config(&data, &cfg);
    serve.env("OPS_TOKEN", "kiln_ops_secret");
    let (_server, base) = start_server(&mut serve, None);
    let client = reqwest::blocking::Client::new();
    let course = format!("{base}/v1/courses/demo");
    assert_eq!(client.get(&course).send().unwrap().status(), 401);
    let r = client.get(&course).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(&course)
        .bearer_auth("kiln_ops_secret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "ops has admin only");
    let r = client
        .post(format!("{base}/v1/courses/demo/ensure"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"chunks": ["question:algebra/linear"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    let root = std::path::PathBuf::from(v["root"].as_str().unwrap());
    assert!(
        root.join("questions/algebra/linear/question.html")
            .is_file()
    );
}

#[test]
fn serve_listens_on_a_unix_socket_and_removes_it_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synced_example(tmp.path());
    let sock = tmp.path().join("kiln.sock");
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(&cfg, "[server]\nsocket_mode = \"0600\"\n").unwrap();
    let mut serve = with_config(&data, &cfg);
    serve
        .arg("serve")
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()));
    let (mut child, line) = spawn_reading_first_line(&mut serve);
    assert_eq!(line, format!("listening on unix:{}", sock.display()));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(
        b"GET /v1/courses/demo/files/questions/algebra/linear/info.json HTTP/1.1\r\n\
          Host: kiln\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let want = std::fs::read_to_string(
        crate::support::repo_root().join("examples/course/questions/algebra/linear/info.json"),
    )
    .unwrap();
    assert!(resp.ends_with(&want), "{resp}");

    // A second server on the same socket is refused while the first answers.
    let err = fails(
        kiln(&data)
            .arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display())),
    );
    assert!(err.contains("another server"), "{err}");

    let st = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!sock.exists(), "a clean stop removes the socket file");
}

#[test]
fn under_a_low_descriptor_limit_the_server_fits_its_connections_and_health_checks_get_in() {
    // A hard limit of 256 descriptors: the default 1024 connections do not fit. Clients that
    // send half a request line and then nothing take every slot; the header timeout is far
    // away, yet /healthz answers.
    let tmp = tempfile::tempdir().unwrap();
    let data = synced_example(tmp.path());
    let cfg = tmp.path().join("kiln.toml");
    std::fs::write(&cfg, "[server]\nheader_read_timeout = \"600s\"\n").unwrap();
    let log = tmp.path().join("serve.log");
    let mut serve = with_config(&data, &cfg);
    serve.stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        serve.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let (_server, base) = start_server(&mut serve, None);
    let said = || std::fs::read_to_string(&log).unwrap();
    let lowered = crate::support::wait_until(std::time::Duration::from_secs(30), || {
        said().contains("max_connections lowered from 1024 to 128")
    });
    assert!(lowered, "{}", said());
    let addr = base.trim_start_matches("http://").to_string();
    let mut stuck = Vec::new();
    for _ in 0..300 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /heal").unwrap();
        stuck.push(c);
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = client.get(format!("{base}/healthz")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
}
