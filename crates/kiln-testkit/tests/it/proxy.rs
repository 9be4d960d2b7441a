//! The proxy forwards, refuses and closes while cut, and forwards again on the same port.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};

use kiln_testkit::proxy::Proxy;

/// An echo server: answers each connection with what it reads.
fn echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0; 64];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut got = vec![0; msg.len()];
    s.read_exact(&mut got)?;
    Ok(got)
}

#[test]
fn a_cut_refuses_and_closes_and_a_restore_forwards_on_the_same_port() {
    let proxy = Proxy::start(echo()).unwrap();
    let mut open = TcpStream::connect(proxy.addr()).unwrap();
    assert_eq!(round_trip(&mut open, b"hello").unwrap(), b"hello");

    proxy.cut();
    let refused = TcpStream::connect(proxy.addr()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    assert!(
        round_trip(&mut open, b"again").is_err(),
        "a connection forwarded before the cut is closed"
    );

    proxy.restore();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    assert_eq!(round_trip(&mut s, b"back").unwrap(), b"back");
}
