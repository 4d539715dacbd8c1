//! A minimal HTTP/1.1 keep-alive client for the load generator.
//!
//! The load generator shares two cores with the server and Postgres, so its own cost
//! per request must be small: one `write` per request, one buffer per connection, no
//! header map, no pool bookkeeping on the hot path. It speaks just enough HTTP for the
//! server's replies (a status line, `content-length` bodies).

use std::net::SocketAddr;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The part of a reply the load generator looks at.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The status line and headers, as received (kept for tests only).
    #[cfg(test)]
    pub head: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

#[cfg(test)]
impl Reply {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One keep-alive connection; one request in flight at a time.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    host: String,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` (loopback only in this benchmark).
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            out: Vec::with_capacity(16 * 1024),
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends one request and reads its reply. `headers` are extra `(name, value)` pairs.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply> {
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                self.host,
                body.len()
            )
            .as_bytes(),
        );
        for (name, value) in headers {
            self.out
                .extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("reply head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = None;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(
                        value
                            .trim()
                            .parse::<usize>()
                            .context("bad content-length")?,
                    );
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("chunked replies are not supported by the bench client");
                }
            }
        }
        let length = length.unwrap_or(0);
        #[cfg(test)]
        let head = head.to_owned();
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        Ok(Reply {
            status,
            #[cfg(test)]
            head,
            body: self.buf[head_end..head_end + length].to_vec(),
        })
    }

    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Connections shared by paced senders: take one (or open one), give it back after.
#[derive(Debug)]
pub struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    /// An empty pool for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// [`Conn::request`] on an idle connection, or a new one.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply> {
        let idle = self.idle.lock().expect("pool lock").pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => Conn::connect(self.addr).await?,
        };
        let reply = conn.request(method, path, headers, body).await?;
        self.idle.lock().expect("pool lock").push(conn);
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A scripted server: answers each request with the next canned reply, split in two
    /// writes so the client must reassemble.
    #[tokio::test]
    async fn reads_replies_split_across_writes_and_keeps_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let replies: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 401 Unauthorized\r\nx: y\r\ncontent-length: 2\r\n\r\n{}",
        ];
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for reply in replies {
                let mut seen = Vec::new();
                while find(&seen, b"\r\n\r\nbody").is_none() {
                    let mut chunk = [0u8; 1024];
                    let n = socket.read(&mut chunk).await.unwrap();
                    seen.extend_from_slice(&chunk[..n]);
                }
                let (a, b) = reply.split_at(reply.len() / 2);
                socket.write_all(a).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                socket.write_all(b).await.unwrap();
            }
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        let want: [(u16, &[u8]); 3] = [(200, b"hello"), (206, b""), (401, b"{}")];
        for (status, body) in want {
            let reply = conn
                .request("POST", "/e/k", &[("x-a", "b")], b"body")
                .await
                .unwrap();
            assert_eq!((reply.status, reply.body.as_slice()), (status, body));
            assert_eq!(
                reply.header("CONTENT-length"),
                Some(body.len().to_string().as_str())
            );
            assert_eq!(reply.header("x"), (status == 401).then_some("y"));
        }
        assert!(conn.request("POST", "/e/k", &[], b"body").await.is_err());
    }
}
