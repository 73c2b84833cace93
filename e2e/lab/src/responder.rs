//! The pods' "containers": an HTTP responder per TCP port, each on a thread that has entered the
//! pod's network namespace, answering every request with the pod's name. Stopped by a flag the
//! accept loop looks at every 100 ms.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Responders {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Responders {
    /// Listens on every port (IPv4 and IPv6) inside `netns`; the answer is `body`.
    pub fn start(netns: &str, ports: &[u16], body: &str) -> std::io::Result<Responders> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for &port in ports {
            let (tx, rx) = std::sync::mpsc::channel();
            let (netns, body, stop) = (netns.to_owned(), body.to_owned(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("http-{port}"))
                    .spawn(move || {
                        let listener = std::fs::File::open(&netns).and_then(|ns| {
                            rustix::thread::move_into_link_name_space(
                                ns.as_fd(),
                                Some(rustix::thread::LinkNameSpaceType::Network),
                            )?;
                            // [::] takes IPv4 too (bindv6only is off in a new namespace).
                            let l =
                                TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
                            l.set_nonblocking(true)?;
                            Ok(l)
                        });
                        match listener {
                            Ok(l) => {
                                let _ = tx.send(Ok(()));
                                serve(&l, &body, &stop);
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        }
                    })?,
            );
            rx.recv()
                .map_err(|_| std::io::Error::other("responder thread died"))??;
        }
        Ok(Responders { stop, threads })
    }
}

fn serve(l: &TcpListener, body: &str, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
                    body.len() + 1
                );
                let _ = s.write_all(reply.as_bytes());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
