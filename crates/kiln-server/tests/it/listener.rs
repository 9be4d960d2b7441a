//! A real listener: a request over TCP, then graceful shutdown.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::Env;

#[tokio::test]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    let env = Env::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kiln_server::run(listener, env.state.clone(), async {
        let _ = stopped.await;
    }));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"GET /v1/courses/demo/files/questions/topic/q1/question.html HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("<p>hello</p>"), "{out}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
