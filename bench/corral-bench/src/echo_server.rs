//! `echo-server`, the broker's limit: answers every frame with a frame of the same size (the
//! request's own bytes), with Kafka's framing and nothing decoded.

use bytes::BytesMut;
use corral_testkit::client::whole_frame_len;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub async fn run(listen: &str) {
    let l = TcpListener::bind(listen).await.expect("bind echo");
    // On stdout, as corral prints its own: `startup --floor` reads the address from it.
    println!("echo listening on {}", l.local_addr().expect("addr"));
    loop {
        let (mut sock, _) = l.accept().await.expect("accept");
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                while let Some(n) = whole_frame_len(&buf) {
                    let frame = buf.split_to(n);
                    if sock.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                match sock.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
    }
}
