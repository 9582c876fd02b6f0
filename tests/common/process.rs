//! What a test can read about this process: its resident memory, threads and descriptors.
//!
//! Linux has them in /proc; Windows and macOS have no /proc, so there each is `None`, and a
//! test checks what it can without them (a counting allocator for the heap, the behaviour
//! itself). Tests whose whole point is one of these numbers are `cfg(target_os = "linux")`.

/// The process's resident set, in KiB (`VmRSS`).
pub fn rss_kib() -> Option<usize> {
    status("VmRSS:")
}

/// The process's threads.
pub fn threads() -> Option<usize> {
    status("Threads:")
}

/// The process's open descriptors.
pub fn fd_count() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

fn status(field: &str) -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Descriptors of this process that are TCP connections (not listeners) to or from `port`:
/// counts exactly one connection's sockets, whatever other tests leave closing meanwhile.
/// Linux only (/proc/net/tcp and /proc/self/fd).
#[cfg(target_os = "linux")]
pub fn connection_fds_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] == "0A" {
                continue;
            }
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port) {
                inodes.insert(f[9].to_owned());
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            let t = target.to_string_lossy();
            t.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
        .count()
}
