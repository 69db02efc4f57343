//! `relay-server`, the proxy's limit: a TCP relay that forwards bytes and decodes nothing.

use tokio::net::{TcpListener, TcpStream};

/// Joins every accepted connection, byte for byte, to a new connection of its own to
/// `upstream` (one task per connection copying both ways, no framing, nothing decoded,
/// 256 KiB buffers), on a runtime built as corral's (multi-thread, a worker per core). What
/// forwarding costs on this machine with nothing else done, as the echo server is the broker's
/// limit.
pub fn run(listen: &str, upstream: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(listen).await.expect("bind relay");
        eprintln!("relay listening on {}, to {upstream}", l.local_addr().expect("addr"));
        loop {
            let (mut client, _) = l.accept().await.expect("accept");
            let upstream = upstream.to_string();
            tokio::spawn(async move {
                let Ok(mut up) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, 256 << 10, 256 << 10).await;
            });
        }
    });
}
