//! Closing the proxy listener's keep-alive connections at shutdown.
//!
//! actix-server's graceful stop waits for every open connection, and an idle keep-alive
//! connection only ends at its keep-alive timeout: the node would serve new requests on it
//! until the grace period ends and then cut it, possibly mid-response. So each worker
//! thread keeps a duplicate handle of its open connections (one `dup` per connection, no
//! per-request cost); at shutdown it shuts down their read side. actix-http then sees the
//! end of input: an idle connection closes at once, a request being answered still gets
//! its complete answer (`h1_allow_half_closed`, the default) and the connection closes
//! after it. A connection with request bytes waiting to be read is left until they are.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use actix_web::dev::Extensions;
use tokio::sync::watch;

/// How often a worker looks again at connections that still had request bytes waiting.
const RETRY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Open {
    next: u64,
    conns: HashMap<u64, TcpStream>,
    watching: bool,
    draining: bool,
}

thread_local! {
    static OPEN: RefCell<Open> = RefCell::new(Open::default());
}

/// Forgets a connection when actix-http drops it (lives in the connection's extensions).
struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        OPEN.with(|o| o.borrow_mut().conns.remove(&self.0));
    }
}

/// The shutdown signal for the proxy listener's connections (cheap to clone).
#[derive(Clone)]
pub struct Drain {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self { tx: std::sync::Arc::new(watch::channel(false).0) }
    }
}

impl Drain {
    /// Closes every open connection once it holds no unread request (on every worker).
    pub fn start(&self) {
        self.tx.send_replace(true);
    }

    /// For `HttpServer::on_connect`: registers each new connection on its worker thread.
    pub fn on_connect(&self, conn: &dyn Any, ext: &mut Extensions) {
        let Some(stream) = conn.downcast_ref::<tokio::net::TcpStream>() else { return };
        let Ok(fd) = stream.as_fd().try_clone_to_owned() else { return };
        let dup = TcpStream::from(fd);
        let spawn = OPEN.with(|o| {
            let mut o = o.borrow_mut();
            if o.draining {
                let _ = dup.shutdown(Shutdown::Read);
                return false;
            }
            o.next += 1;
            let id = o.next;
            o.conns.insert(id, dup);
            ext.insert(Registered(id));
            !std::mem::replace(&mut o.watching, true)
        });
        if spawn {
            let mut rx = self.tx.subscribe();
            actix_rt::spawn(async move {
                if rx.wait_for(|d| *d).await.is_err() {
                    return;
                }
                while close_idle() > 0 {
                    actix_rt::time::sleep(RETRY).await;
                }
            });
        }
    }
}

/// Shuts down the read side of this thread's connections that have no request bytes
/// waiting; answers how many are left for a later pass.
fn close_idle() -> usize {
    OPEN.with(|o| {
        let mut o = o.borrow_mut();
        o.draining = true;
        let mut buf = [0u8; 1];
        o.conns.retain(|_, s| {
            // The socket is non-blocking (Tokio's): `WouldBlock` means nothing is waiting.
            let waiting = matches!(s.peek(&mut buf), Ok(n) if n > 0);
            if !waiting {
                let _ = s.shutdown(Shutdown::Read);
            }
            waiting
        });
        o.conns.len()
    })
}
