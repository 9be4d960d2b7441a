//! `kiln serve` end to end on the embedded default: files, and the reheat routes (builds,
//! runs, cache reads) over a library the config declares.

use crate::support::{example_repo, kiln, ok, start_server};

#[test]
fn serve_answers_files_builds_runs_and_cache_reads() {
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
content_type = "text/html"
"#,
    )
    .unwrap();
    let k = |c: &mut std::process::Command| {
        c.arg("--config").arg(&cfg);
    };
    let mut sync = kiln(&data);
    k(&mut sync);
    ok(sync.args(["sync"]).arg(&repo).args(["--course", "demo"]));
    let mut worker = kiln(&data);
    k(&mut worker);
    ok(worker.args(["worker", "--exit-when-idle", "300ms"]));

    let mut serve = kiln(&data);
    k(&mut serve);
    let (_server, base) = start_server(&mut serve, None);
    let client = reqwest::blocking::Client::new();
    {
        // A rendered card, with its generation.
        let r = client
            .get(format!("{base}/v1/cache/cards/algebra/linear"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html");
        assert_eq!(r.headers()["x-kiln-generation"], "1");
        let body = r.text().unwrap();
        assert!(
            body.starts_with("<div>") && body.contains("algebra/linear"),
            "{body}"
        );
        let r = client
            .get(format!("{base}/v1/cache/cards/no/such/key"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404);

        // A build pipeline's POST starts a run at the next generation.
        let r = client
            .post(format!("{base}/v1/libraries/cards/builds"))
            .header("content-type", "application/json")
            .body(r#"{"build": "ci-42"}"#)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let run: serde_json::Value = r.json().unwrap();
        assert_eq!(run["generation"], 2);
        assert_eq!(run["build"], "ci-42");
        let r = client
            .get(format!("{base}/v1/runs/{}", run["run"]))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<serde_json::Value>().unwrap()["library"], "cards");

        // Bad input is named.
        let r = client
            .post(format!("{base}/v1/libraries/nope/builds"))
            .header("content-type", "application/json")
            .send()
            .unwrap();
        assert_eq!(r.status(), 404);
        let err: serde_json::Value = r.json().unwrap();
        assert!(err["message"].as_str().unwrap().contains("nope"), "{err}");
        let r = client.get(format!("{base}/v1/runs/abc")).send().unwrap();
        assert_eq!(r.status(), 400);
        let r = client
            .post(format!("{base}/v1/libraries/cards/builds"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap();
        assert_eq!(r.status(), 400);

        // Files still come through the same server.
        let r = client
            .get(format!("{base}/v1/courses/demo/files/infoCourse.json"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.bytes().unwrap().as_ref(),
            std::fs::read(repo.join("infoCourse.json")).unwrap()
        );
    }
}
