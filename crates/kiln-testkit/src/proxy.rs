//! A TCP proxy that a test can cut: while cut, its port refuses connections and every
//! connection it forwarded is closed, as when a database host goes away; restored, it
//! forwards again on the same port. Plain threads, so that tests with or without a tokio
//! runtime (and the processes they start) can go through it.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A proxy on `127.0.0.1` to one target address.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// The accept loop while the proxy forwards, and its stop flag.
    running: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
    /// Both ends of every connection forwarded since the last cut.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// A proxy to `target` on a port of its own, forwarding.
    pub fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            target,
            running: Mutex::new(None),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding: the port refuses connections from now on, and the connections
    /// forwarded so far are closed. Idempotent.
    pub fn cut(&self) {
        if let Some((stop, thread)) = self.running.lock().unwrap().take() {
            stop.store(true, Ordering::SeqCst);
            // Wakes the accept loop, which then drops the listener.
            let _ = TcpStream::connect(self.addr);
            let _ = thread.join();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forwards again, on the same port. Panics if the port was taken meanwhile.
    pub fn restore(&self) {
        if self.running.lock().unwrap().is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("binding the proxy's port {} again: {e}", self.addr));
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (target, open, stopping) = (self.target, self.open.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(inbound) = inbound else { continue };
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) else {
                    continue;
                };
                open.lock().unwrap().extend([a, b]);
                pipe(inbound, outbound);
            }
        });
        *self.running.lock().unwrap() = Some((stop, thread));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies bytes both ways between `a` and `b` until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    for (mut from, mut to) in [(a, b), (b2, a2)] {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}
