//! Slow and idle clients over a real listener: idle sockets and slowloris headers are closed
//! after their timeouts, the connection limit holds, and /healthz keeps answering.

use std::net::SocketAddr;
use std::time::Duration;

use kiln_server::ServeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::Env;

/// A generous bound for anything the server must do "after the timeout".
const PATIENCE: Duration = Duration::from_secs(30);

async fn start(env: &Env, options: ServeOptions) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kiln_server::run_with(
        listener,
        env.state.clone(),
        options,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Waits (bounded) until the server closes `conn`: a read returns EOF or an error.
async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let r = tokio::time::timeout(PATIENCE, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    r.is_ok()
}

async fn healthz(addr: SocketAddr) -> String {
    let fut = async {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    };
    tokio::time::timeout(PATIENCE, fut)
        .await
        .expect("/healthz answers")
}

fn open_connections(env: &Env) -> i64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &env.state.registry).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("kiln_http_connections "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_clients_are_cut_off_and_the_limit_holds() {
    let env = Env::new().await;
    let limit = 16;
    let (addr, _stop) = start(
        &env,
        ServeOptions {
            header_read_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(500),
            max_connections: std::num::NonZeroUsize::new(limit).unwrap(),
        },
    )
    .await;
    // Far more idle sockets than the limit; the kernel backlog holds the rest.
    let mut idle = Vec::new();
    for _ in 0..3 * limit {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Slowloris: a header byte at a time, forever.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            if slow.write_all(b"x").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(open_connections(&env) <= limit as i64);
    // Health checks get through: idle sockets time out and free their slots.
    let out = healthz(addr).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(open_connections(&env) <= limit as i64);
    for c in &mut idle {
        assert!(closed_by_server(c).await, "an idle socket stayed open");
    }
    assert!(
        tokio::time::timeout(PATIENCE, trickle)
            .await
            .unwrap()
            .unwrap(),
        "a slowloris client kept its connection"
    );
    let out = healthz(addr).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_is_cut_off() {
    let env = Env::new().await;
    let (addr, _stop) = start(
        &env,
        ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_millis(500),
            max_connections: std::num::NonZeroUsize::new(4).unwrap(),
        },
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /v1/courses/demo/ensure HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"chunks\":")
        .await
        .unwrap();
    assert!(closed_by_server(&mut c).await);
    // A kept-alive connection that answered a request is still served in time.
    let out = healthz(addr).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_health_checks_get_in_past_clients_that_never_finish_a_request() {
    // Clients that send half a request line and then nothing fill every slot; the header
    // timeout is far away, yet /healthz and /metrics answer at once: a new connection
    // sheds the oldest one no handler works for.
    let env = Env::new().await;
    let limit = 8;
    let (addr, _stop) = start(
        &env,
        ServeOptions {
            header_read_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            max_connections: std::num::NonZeroUsize::new(limit).unwrap(),
        },
    )
    .await;
    let mut stuck = Vec::new();
    for _ in 0..limit + 4 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /heal").await.unwrap();
        stuck.push(c);
    }
    let full = tokio::time::timeout(PATIENCE, async {
        while open_connections(&env) < limit as i64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    full.await.expect("the stuck clients fill the limit");
    for _ in 0..3 {
        let out = healthz(addr).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
    assert!(open_connections(&env) <= limit as i64);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &env.state.registry).unwrap();
    let shed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kiln_http_connections_shed_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(shed >= 3, "{shed} connections shed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_header_fields_get_a_json_431_naming_the_count() {
    let env = Env::new().await;
    let (addr, _stop) = start(&env, ServeOptions::default()).await;
    let mut req = String::from("PUT /v1/cache/pages/k HTTP/1.1\r\nhost: localhost\r\n");
    for i in 0..200 {
        req.push_str(&format!("x-kiln-meta-m{i}: v\r\n"));
    }
    req.push_str("content-length: 1\r\nconnection: close\r\n\r\nx");
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(PATIENCE, c.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let body = out.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"], "header_fields_too_large");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("203 header fields") && msg.contains("200 of them"),
        "{msg}"
    );
}
