//! A server binary started on port 0 (`--listen 127.0.0.1:0`, or however it is told): the
//! address it bound is read from the first line it prints, `... listening on ADDR[,| ]...`, as
//! corral prints it. No port is picked beforehand and hoped to be still free when the server
//! binds it.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running server; killed (and reaped) when dropped.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    first_line: String,
}

impl ServerProcess {
    /// Spawns `cmd` with its stdout taken over, and returns once the server has printed the
    /// line naming the address it listens on. The rest of its stdout is read and dropped on a
    /// thread of its own, so the server never writes into a closed pipe. Fails if the process
    /// ends (or prints something else) first.
    pub fn spawn(cmd: &mut Command) -> io::Result<ServerProcess> {
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let mut out = BufReader::new(child.stdout.take().expect("stdout was piped"));
        let mut first_line = String::new();
        let addr = match out.read_line(&mut first_line).map(|_| listening_addr(&first_line)) {
            Ok(Some(addr)) => addr,
            failed => {
                let _ = child.kill();
                let status = child.wait()?;
                return Err(match failed {
                    Err(e) => e,
                    Ok(_) => io::Error::other(format!("{cmd:?} printed {first_line:?} before any address ({status})")),
                });
            }
        };
        std::thread::spawn(move || io::copy(&mut out, &mut io::sink()));
        Ok(ServerProcess { child, addr, first_line })
    }

    /// Spawns `cmd` for a server that does not print the address it bound (Tansu prints the
    /// URL it was given): the caller chose `addr` and told the server. Returns at once, before
    /// the server listens.
    pub fn spawn_at(cmd: &mut Command, addr: SocketAddr) -> io::Result<ServerProcess> {
        Ok(ServerProcess { child: cmd.spawn()?, addr, first_line: String::new() })
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

    /// Asks it to stop gracefully (SIGTERM) and waits until it has.
    pub fn terminate(&mut self) -> io::Result<ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        self.child.wait()
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
}
