//! A server binary started on port 0 (`--listen 127.0.0.1:0`, or however it is told): the
//! address it bound is read from the first line it prints, `... listening on ADDR[,| ]...`, as
//! corral prints it. No port is picked beforehand and hoped to be still free when the server
//! binds it. A restart on the same port is a second spawn told the [`ServerProcess::addr`] of
//! the first.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A running server; killed (and reaped) when dropped.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    first_line: String,
    stderr: Stderr,
}

impl ServerProcess {
    /// Spawns `cmd` with its stdout taken over, and returns once the server has printed the
    /// line naming the address it listens on. The rest of its stdout is read and dropped on a
    /// thread of its own, so the server never writes into a closed pipe. Fails if the process
    /// ends (or prints something else) first. Its stderr goes where `cmd` sends it.
    pub fn spawn(cmd: &mut Command) -> io::Result<ServerProcess> {
        Self::start(cmd, false, None)
    }

    /// As [`ServerProcess::spawn`], with its stderr kept (read with [`ServerProcess::stderr`]),
    /// and a time limit: a server that has not printed its address within `limit` is killed.
    /// A failure to start says what it wrote to stderr.
    pub fn spawn_logged(cmd: &mut Command, limit: Duration) -> io::Result<ServerProcess> {
        Self::start(cmd, true, Some(limit))
    }

    fn start(cmd: &mut Command, keep_stderr: bool, limit: Option<Duration>) -> io::Result<ServerProcess> {
        if keep_stderr {
            cmd.stderr(Stdio::piped());
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let stderr = if keep_stderr { Stderr::collect(child.stderr.take().expect("stderr was piped")) } else { Stderr::none() };
        let mut out = BufReader::new(child.stdout.take().expect("stdout was piped"));
        let (first_tx, first_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let read = out.read_line(&mut first).map(|_| first);
            let _ = first_tx.send(read);
            io::copy(&mut out, &mut io::sink())
        });
        let first = match limit {
            Some(limit) => first_rx.recv_timeout(limit).ok(),
            None => first_rx.recv().ok(),
        };
        let failed = match first {
            Some(Ok(line)) => match listening_addr(&line) {
                Some(addr) => return Ok(ServerProcess { child, addr, first_line: line, stderr }),
                None => format!("printed {line:?} before any address"),
            },
            Some(Err(e)) => format!("could not be read: {e}"),
            None => format!("printed no address within {:?}", limit.unwrap_or_default()),
        };
        let _ = child.kill();
        let status = child.wait()?;
        // All it wrote, now that it is gone (its stderr closes with it).
        let text = stderr.wait_for(Duration::from_secs(5), |_, closed| closed).unwrap_or_else(|text| text);
        let also = if keep_stderr { format!("; stderr: {text}") } else { String::new() };
        Err(io::Error::other(format!("{cmd:?} {failed} ({status}){also}")))
    }

    /// Spawns `cmd` for a server that does not print the address it bound (Tansu prints the
    /// URL it was given): the caller chose `addr` and told the server. Returns at once, before
    /// the server listens.
    pub fn spawn_at(cmd: &mut Command, addr: SocketAddr) -> io::Result<ServerProcess> {
        Ok(ServerProcess { child: cmd.spawn()?, addr, first_line: String::new(), stderr: Stderr::none() })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The line it announced itself with (empty after [`ServerProcess::spawn_at`]).
    pub fn first_line(&self) -> &str {
        &self.first_line
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it writes to stderr, after [`ServerProcess::spawn_logged`] (otherwise nothing,
    /// and closed).
    pub fn stderr(&self) -> Stderr {
        self.stderr.clone()
    }

    /// Asks it to stop gracefully (SIGTERM) and waits until it has.
    pub fn terminate(&mut self) -> io::Result<ExitStatus> {
        self.signal("-TERM")?;
        self.child.wait()
    }

    /// Asks it to stop gracefully (SIGTERM) and waits up to `limit`: its exit status, or
    /// `None` if it is still running (it is then left running).
    pub fn terminate_within(&mut self, limit: Duration) -> io::Result<Option<ExitStatus>> {
        self.signal("-TERM")?;
        wait_within(&mut self.child, limit)
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    fn signal(&self, which: &str) -> io::Result<()> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([which, &pid]).status()?;
        if sent.success() { Ok(()) } else { Err(io::Error::other(format!("kill {which} {pid}: {sent}"))) }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd`, a server expected to refuse to start (and so to exit by itself), with its
/// stderr captured: its exit status, or `None` if it was still running after `limit` (it is
/// then killed); and everything it wrote to stderr.
pub fn run_to_exit(cmd: &mut Command, limit: Duration) -> io::Result<(Option<ExitStatus>, String)> {
    let mut child = cmd.stderr(Stdio::piped()).spawn()?;
    let stderr = Stderr::collect(child.stderr.take().expect("stderr was piped"));
    let status = wait_within(&mut child, limit)?;
    if status.is_none() {
        let _ = child.kill();
        child.wait()?;
    }
    let text =
        stderr.wait_for(limit, |_, closed| closed).map_err(|_| io::Error::other(format!("{cmd:?}: stderr still open after it exited")))?;
    Ok((status, text))
}

/// Waits for `child` to exit, up to `limit`, looking every 10 ms; `None` if it is still running.
fn wait_within(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process's stderr as it arrives, read line by line on a thread of its own until the pipe
/// closes. Clones share it (one can wait off an async runtime's workers).
#[derive(Clone)]
pub struct Stderr(Arc<Collected>);

struct Collected {
    /// The text so far, and whether the pipe has closed.
    text: Mutex<(String, bool)>,
    grew: Condvar,
}

impl Stderr {
    fn collect(pipe: impl Read + Send + 'static) -> Stderr {
        let stderr = Stderr(Arc::new(Collected { text: Mutex::new((String::new(), false)), grew: Condvar::new() }));
        let shared = stderr.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = shared.text.lock().expect("stderr text");
                text.0.push_str(&line);
                text.0.push('\n');
                shared.grew.notify_all();
            }
            shared.text.lock().expect("stderr text").1 = true;
            shared.grew.notify_all();
        });
        stderr
    }

    /// Nothing kept: empty and closed.
    fn none() -> Stderr {
        Stderr(Arc::new(Collected { text: Mutex::new((String::new(), true)), grew: Condvar::new() }))
    }

    /// The text so far.
    pub fn text(&self) -> String {
        self.0.text.lock().expect("stderr text").0.clone()
    }

    /// Waits until `done(text, closed)` holds, up to `limit`: the text then, or `Err` with the
    /// text so far if time ran out or the pipe closed (the process exited) first.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&str, bool) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        let mut text = self.0.text.lock().expect("stderr text");
        loop {
            if done(&text.0, text.1) {
                return Ok(text.0.clone());
            }
            let now = Instant::now();
            if text.1 || now >= deadline {
                return Err(text.0.clone());
            }
            text = self.0.grew.wait_timeout(text, deadline - now).expect("stderr text").0;
        }
    }

    /// Waits until it holds `needle`, up to `limit`; `Err` with the text so far if it does not
    /// in time, or the process exited first.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> Result<(), String> {
        self.wait_for(limit, |text, _| text.contains(needle)).map(drop)
    }
}

/// The address after "listening on " in a server's first line, up to a comma or a space.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.split([',', ' ', '\n']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_corrals_first_line() {
        let line = "corral 0.1.0 broker listening on 127.0.0.1:40123, advertised as 127.0.0.1:40123, in memory\n";
        assert_eq!(listening_addr(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(listening_addr("listening on [::1]:9092\n"), Some("[::1]:9092".parse().unwrap()));
        assert_eq!(listening_addr("tansu broker 0.6.0\n"), None);
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn stderr_is_kept_and_waited_for() {
        let server = ServerProcess::spawn_logged(
            &mut sh("echo warming up >&2; echo 'x listening on 127.0.0.1:5, y'; echo torn tail cut >&2; exec sleep 30"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(server.addr(), "127.0.0.1:5".parse().unwrap());
        server.stderr().wait_for_line("torn tail", Duration::from_secs(10)).unwrap();
        assert!(server.stderr().text().starts_with("warming up\n"));
        assert_eq!(server.stderr().wait_for_line("never", Duration::from_millis(50)), Err(server.stderr().text()));
    }

    #[test]
    fn a_server_that_never_says_where_it_listens_is_given_up_on() {
        let err = ServerProcess::spawn_logged(&mut sh("echo starting >&2; exec sleep 30"), Duration::from_millis(200)).err().unwrap();
        assert!(err.to_string().contains("no address within 200ms"), "{err}");
        assert!(err.to_string().contains("stderr: starting"), "{err}");
        let err = ServerProcess::spawn_logged(&mut sh("echo hello; echo bad flag >&2; exit 2"), Duration::from_secs(10)).err().unwrap();
        assert!(err.to_string().contains("printed \"hello\\n\" before any address") && err.to_string().contains("bad flag"), "{err}");
    }

    #[test]
    fn sigterm_and_sigkill() {
        let mut server = ServerProcess::spawn(&mut sh("echo 'listening on 127.0.0.1:6'; exec sleep 30")).unwrap();
        let status = server.terminate_within(Duration::from_secs(10)).unwrap().expect("sleep exits on SIGTERM");
        assert!(!status.success());
        let mut server = ServerProcess::spawn(&mut sh("echo 'listening on 127.0.0.1:7'; exec sleep 30")).unwrap();
        assert!(!server.kill().unwrap().success());
    }

    #[test]
    fn a_refusal_is_its_status_and_stderr() {
        let (status, text) = run_to_exit(sh("echo corrupt at byte 0 >&2; exit 1").stdout(Stdio::null()), Duration::from_secs(10)).unwrap();
        assert_eq!((status.and_then(|s| s.code()), text.as_str()), (Some(1), "corrupt at byte 0\n"));
        let (status, _) = run_to_exit(&mut sh("exec sleep 30"), Duration::from_millis(100)).unwrap();
        assert!(status.is_none(), "still running");
    }
}
