//! Socket options that neither std, tokio, socket2 nor nix wrap. This crate holds the
//! workspace's only `unsafe` block; everything else forbids it.
//!
//! - [`set_tcp_md5`]: TCP MD5 signatures (RFC 2385) with one peer address, `TCP_MD5SIG`.
//! - [`set_gtsm`]: the Generalized TTL Security Mechanism (RFC 5082): send with TTL 255 and
//!   take nothing that arrives with less (`IP_MINTTL`, `IPV6_MINHOPCOUNT`).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `TCP_MD5SIG_MAXKEYLEN` (include/uapi/linux/tcp.h).
pub const MAX_KEY_LEN: usize = 80;

/// `sizeof(struct __kernel_sockaddr_storage)`.
const SOCKADDR_STORAGE: usize = 128;

/// `struct tcp_md5sig`: the peer's sockaddr in a sockaddr_storage, then `u8 tcpm_flags`,
/// `u8 tcpm_prefixlen`, `u16 tcpm_keylen`, `u32 tcpm_ifindex` and `u8 tcpm_key[80]`: 216 octets
/// with no padding (every field is at its natural alignment).
const TCP_MD5SIG_LEN: usize = SOCKADDR_STORAGE + 1 + 1 + 2 + 4 + MAX_KEY_LEN;
const KEYLEN_AT: usize = SOCKADDR_STORAGE + 2;
const KEY_AT: usize = SOCKADDR_STORAGE + 8;

/// The option's value: key `key` for segments to and from `peer`. On an IPv6 socket an IPv4
/// peer is written as its v4-mapped IPv6 address, which is how such a socket sees it. An empty
/// key removes the peer's key.
fn tcp_md5sig(peer: IpAddr, v6_socket: bool, key: &[u8]) -> io::Result<[u8; TCP_MD5SIG_LEN]> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key of {} octets: at most {MAX_KEY_LEN}", key.len()),
        ));
    }
    let mut v = [0u8; TCP_MD5SIG_LEN];
    let peer = match peer {
        IpAddr::V4(a) if v6_socket => IpAddr::V6(a.to_ipv6_mapped()),
        IpAddr::V6(a) if !v6_socket => match a.to_ipv4_mapped() {
            Some(a4) => IpAddr::V4(a4),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{a} cannot be reached on an IPv4 socket"),
                ));
            }
        },
        other => other,
    };
    // sockaddr_in / sockaddr_in6: family in host order, port 0 (any), then the address.
    match peer {
        IpAddr::V4(a) => {
            v[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            v[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            // sin6_flowinfo (4 octets of zero) sits between the port and the address.
            v[8..24].copy_from_slice(&a.octets());
        }
    }
    v[KEYLEN_AT..KEYLEN_AT + 2].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    v[KEY_AT..KEY_AT + key.len()].copy_from_slice(key);
    Ok(v)
}

/// Sets (or with an empty `key`, removes) the TCP MD5 key for `peer` on a TCP socket: a
/// listener, so that the peer's SYNs are verified, or a socket before `connect`. `v6_socket`
/// says whether the socket is AF_INET6.
pub fn set_tcp_md5(
    fd: BorrowedFd<'_>,
    peer: IpAddr,
    v6_socket: bool,
    key: &[u8],
) -> io::Result<()> {
    let value = tcp_md5sig(peer, v6_socket, key)?;
    // SAFETY: `fd` is a borrowed, hence open, descriptor for the whole call. `value` is a live
    // array of exactly `TCP_MD5SIG_LEN` octets and that is the length passed, so the kernel reads
    // only memory we own; it copies the option in and keeps no pointer to it. A wrong kind of
    // descriptor is reported by the kernel as an error (ENOTSOCK, ENOPROTOOPT), not undefined
    // behaviour.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            value.as_ptr().cast::<libc::c_void>(),
            TCP_MD5SIG_LEN as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An `int` socket option.
fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is a borrowed, hence open, descriptor for the whole call; `value` lives on
    // the stack until the call returns and its size is the length passed; the kernel copies it
    // and keeps no pointer. A wrong descriptor or option is an error (ENOTSOCK, ENOPROTOOPT).
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// RFC 5082 on a TCP socket (a connecting one before `connect`, or an accepted one): segments
/// leave with TTL (hop limit) 255 and the kernel drops those that arrive with less, so only a
/// directly connected peer can reach the session. On an AF_INET6 socket (`v6_socket`) both the
/// IPv6 options and the IPv4 ones (for v4-mapped peers) are set.
pub fn set_gtsm(fd: BorrowedFd<'_>, v6_socket: bool) -> io::Result<()> {
    send_with_ttl_255(fd, v6_socket)?;
    if v6_socket {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, 255)?;
    }
    set_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL, 255)
}

/// The sending half of [`set_gtsm`]: for a listener shared by peers with and without GTSM, so
/// that a GTSM peer that connects takes our SYN-ACK (its minimum TTL is set before it sends
/// its SYN); the connection gets the receiving half once it is known whose it is.
pub fn send_with_ttl_255(fd: BorrowedFd<'_>, v6_socket: bool) -> io::Result<()> {
    if v6_socket {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
    }
    set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, 255)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::os::fd::AsFd;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Every connection the listener takes is answered "ok".
    fn answer_ok(listener: tokio::net::TcpListener) {
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"ok").await;
            }
        });
    }

    /// Whether `s` connects to `to` within 1.5 s and reads "ok" there.
    async fn reads_ok(s: tokio::net::TcpSocket, to: SocketAddr) -> bool {
        match tokio::time::timeout(Duration::from_millis(1500), s.connect(to)).await {
            Ok(Ok(mut c)) => {
                let mut b = [0u8; 2];
                c.read_exact(&mut b).await.is_ok() && &b == b"ok"
            }
            _ => false,
        }
    }

    #[test]
    fn layout_matches_struct_tcp_md5sig() {
        assert_eq!(TCP_MD5SIG_LEN, 216);
        let v = tcp_md5sig("198.18.0.1".parse().unwrap(), false, b"k3y").unwrap();
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), libc::AF_INET as u16);
        assert_eq!(&v[2..4], &[0, 0], "port: any");
        assert_eq!(&v[4..8], &[198, 18, 0, 1]);
        assert_eq!(u16::from_ne_bytes([v[130], v[131]]), 3);
        assert_eq!(&v[136..139], b"k3y");
        assert!(v[139..].iter().all(|b| *b == 0));

        let v = tcp_md5sig("198.18.0.1".parse().unwrap(), true, b"k").unwrap();
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), libc::AF_INET6 as u16);
        assert_eq!(
            &v[8..24],
            &Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped().octets()
        );

        assert!(tcp_md5sig("fd00::1".parse().unwrap(), false, b"k").is_err());
        assert!(tcp_md5sig("fd00::1".parse().unwrap(), true, &[0; 81]).is_err());
    }

    /// Over loopback: the same key on both ends talks; a wrong or missing key never connects,
    /// because the listener drops unsigned or mis-signed SYNs.
    #[tokio::test]
    async fn kernel_enforces_the_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        set_tcp_md5(listener.as_fd(), lo, false, b"right").unwrap();
        answer_ok(listener);
        let dial = |key: Option<&'static [u8]>| async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            if let Some(k) = key {
                set_tcp_md5(s.as_fd(), lo, false, k).unwrap();
            }
            reads_ok(s, SocketAddr::new(lo, port)).await
        };
        assert!(dial(Some(b"right")).await);
        assert!(!dial(Some(b"wrong")).await);
        assert!(!dial(None).await);
    }

    /// A listener with GTSM takes a connection only from a socket that sends with TTL 255 (on
    /// loopback the default is 64): the kernel drops the others' SYNs. IPv4 and IPv6.
    #[tokio::test]
    async fn kernel_enforces_the_minimum_ttl() {
        for (any, lo) in [
            ("127.0.0.1:0", IpAddr::from(Ipv4Addr::LOCALHOST)),
            ("[::1]:0", IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ] {
            let Ok(listener) = tokio::net::TcpListener::bind(any).await else {
                continue; // no IPv6 here
            };
            let port = listener.local_addr().unwrap().port();
            set_gtsm(listener.as_fd(), lo.is_ipv6()).unwrap();
            answer_ok(listener);
            let dial = |gtsm: bool| async move {
                let s = if lo.is_ipv6() {
                    tokio::net::TcpSocket::new_v6().unwrap()
                } else {
                    tokio::net::TcpSocket::new_v4().unwrap()
                };
                if gtsm {
                    set_gtsm(s.as_fd(), lo.is_ipv6()).unwrap();
                }
                reads_ok(s, SocketAddr::new(lo, port)).await
            };
            assert!(dial(true).await, "{lo}");
            assert!(!dial(false).await, "{lo}");
        }
    }
}
