//! Name lookups with a deadline and a way out.
//!
//! `getaddrinfo` blocks with no timeout of its own but the resolver's (resolv.conf's
//! `timeout` × `attempts` per name server, which a broken network turns into minutes), and
//! nothing can interrupt it. So a lookup runs on a pooled thread of its own and the socket's
//! reader waits for its answer only until the connect deadline, or until `cancel()` fires the
//! socket's [`Abort`]: either way the connect ends at once, and the lookup finishes (or not)
//! on its own thread, which then goes back to the pool.
//!
//! IP literals need no lookup and take no thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crossbeam_channel::select;

use crate::config::Resolver;
use crate::driver::pool::{self, Job, ThreadRole};
use crate::driver::socket::Abort;
use crate::error::Error;

/// Stack of a lookup thread: `getaddrinfo` and the NSS modules it loads want more than a
/// few pages, and the pool keeps threads of one size together.
const LOOKUP_STACK: usize = 256 * 1024;
/// How long an idle lookup thread waits in the pool for the next lookup.
const LOOKUP_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Why a lookup gave no addresses.
#[derive(Debug)]
pub(crate) enum LookupError {
    /// The resolver said so.
    Failed(Error),
    /// The deadline passed first.
    TimedOut,
    /// The socket was canceled.
    Aborted,
}

/// `localhost` and names under it are loopback (RFC 6761 §6.3), as browsers resolve them: no
/// lookup (and no thread) is needed, and a resolver that says otherwise is not asked.
fn is_localhost(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .len()
            .checked_sub(".localhost".len())
            .and_then(|i| host.get(i..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"))
}

/// The addresses of `host:port` that need no resolver: an IP address literal, or `localhost`
/// (the loopback addresses, IPv4 first). `None` for a name to look up.
pub(crate) fn without_lookup(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    is_localhost(host).then(|| {
        vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ]
    })
}

/// Resolves `host:port` with `resolver`, waiting until `deadline` at most, or until `abort`
/// fires.
pub(crate) fn lookup(
    resolver: &Resolver,
    host: &str,
    port: u16,
    deadline: Instant,
    abort: &Abort,
) -> Result<Vec<SocketAddr>, LookupError> {
    if let Some(addrs) = without_lookup(host, port) {
        return Ok(addrs);
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (resolver, name) = (resolver.clone(), host.to_owned());
    let job: Job = Box::new(move || {
        let _ = tx.send(resolver.resolve(&name, port));
        LOOKUP_KEEP_ALIVE
    });
    if let Err((e, _)) = pool::spawn(ThreadRole::Resolver, LOOKUP_STACK, job) {
        return Err(LookupError::Failed(Error::io(
            e.kind(),
            format!("could not start a thread to resolve {host}: {e}"),
        )));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    select! {
        recv(rx) -> answer => match answer {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(LookupError::Failed(Error::io(
                e.kind(),
                format!("resolving {host}: {e}"),
            ))),
            // The resolver panicked (a custom one): the pool logged it.
            Err(_) => Err(LookupError::Failed(Error::io(
                io::ErrorKind::Other,
                format!("resolving {host}: the resolver panicked"),
            ))),
        },
        recv(abort.receiver()) -> _ => Err(LookupError::Aborted),
        default(left) => {
            log::debug!("resolving {host} did not finish in time");
            Err(LookupError::TimedOut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn ip_literals_take_no_lookup() {
        let never = Resolver::new(|_, _| panic!("no lookup for a literal"));
        let abort = Abort::new();
        let addrs = lookup(&never, "::1", 80, far(), &abort).unwrap();
        assert_eq!(addrs, vec!["[::1]:80".parse().unwrap()]);
    }

    #[test]
    fn localhost_is_loopback_without_a_lookup() {
        let never = Resolver::new(|_, _| panic!("no lookup for localhost"));
        let abort = Abort::new();
        for host in ["localhost", "LocalHost.", "chat.localhost"] {
            let addrs = lookup(&never, host, 9, far(), &abort).unwrap();
            assert_eq!(
                addrs,
                vec!["127.0.0.1:9".parse().unwrap(), "[::1]:9".parse().unwrap()],
                "{host}"
            );
        }
        assert!(!is_localhost("notlocalhost"));
        assert!(!is_localhost("localhost.example"));
    }

    #[test]
    fn a_stuck_lookup_ends_at_the_deadline_or_at_once_on_abort() {
        let (release, held) = crossbeam_channel::bounded::<()>(0);
        let stuck = Resolver::new(move |_, _| {
            let _ = held.recv();
            Ok(Vec::new())
        });
        let abort = Abort::new();
        let t0 = Instant::now();
        let r = lookup(
            &stuck,
            "stuck.test",
            80,
            t0 + Duration::from_millis(50),
            &abort,
        );
        assert!(matches!(r, Err(LookupError::TimedOut)), "{r:?}");
        assert!(t0.elapsed() >= Duration::from_millis(50));
        abort.fire();
        let r = lookup(&stuck, "stuck.test", 80, far(), &abort);
        assert!(matches!(r, Err(LookupError::Aborted)), "{r:?}");
        drop(release);
    }

    #[test]
    fn answers_and_errors_come_back() {
        let resolve = Resolver::new(|host, port| {
            if host == "ok.test" {
                Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
            }
        });
        let abort = Abort::new();
        let addrs = lookup(&resolve, "ok.test", 9, far(), &abort).unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:9".parse().unwrap()]);
        match lookup(&resolve, "no.test", 9, far(), &abort) {
            Err(LookupError::Failed(e)) => {
                assert!(e.to_string().contains("resolving no.test"), "{e}")
            }
            r => panic!("{r:?}"),
        }
    }
}
