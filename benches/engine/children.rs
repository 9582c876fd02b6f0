//! Child processes of this binary: the servers, and the idle/scale clients.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::Deadline;

/// A child process of this binary. Dropping it closes its stdin (it exits), then kills it if
/// it has not exited within 2 s.
pub struct ChildProc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: mpsc::Receiver<String>,
    pub what: String,
}

impl ChildProc {
    pub fn spawn(args: &[String], what: &str) -> Result<ChildProc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the {what}: {e}"))?;
        let stdout = child.stdout.take().expect("child stdout is piped");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildProc {
            child,
            stdin,
            lines: rx,
            what: what.to_owned(),
        })
    }

    /// Waits for a line starting with `prefix` and returns the rest; other lines go to `other`.
    pub fn wait_line(
        &self,
        prefix: &str,
        timeout: Duration,
        other: &mut Vec<String>,
    ) -> Result<String, String> {
        let deadline = Deadline::after(timeout);
        loop {
            match self.lines.recv_timeout(deadline.remaining()) {
                Ok(l) => match l.strip_prefix(prefix) {
                    Some(rest) => return Ok(rest.trim().to_owned()),
                    None => other.push(l),
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: no '{prefix}' line within {timeout:?}",
                        self.what
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("{}: exited before printing '{prefix}'", self.what));
                }
            }
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)) | Err(_))
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Deadline::after(Duration::from_secs(2));
        while !deadline.passed() {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server child and the port it listens on.
pub struct ServerProc {
    pub proc: ChildProc,
    pub port: u16,
    flag: &'static str,
}

impl ServerProc {
    pub fn start(flag: &'static str) -> Result<ServerProc, String> {
        let proc = ChildProc::spawn(&[flag.to_owned()], &format!("{flag} child"))?;
        let line = proc.wait_line("PORT ", Duration::from_secs(20), &mut Vec::new())?;
        let port = line
            .parse()
            .map_err(|e| format!("{flag}: bad port line {line:?}: {e}"))?;
        Ok(ServerProc { proc, port, flag })
    }

    /// Restarts the server if it died; returns a note saying so.
    pub fn ensure_alive(&mut self) -> Result<Option<String>, String> {
        if !self.proc.exited() {
            return Ok(None);
        }
        *self = ServerProc::start(self.flag)?;
        Ok(Some(format!(
            "the {} child had exited and was restarted",
            self.flag
        )))
    }
}
