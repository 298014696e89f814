//! Raw HTTP/1.1 plumbing for the RPC proxies the tests and benches put in front of Anvil
//! (`tests/it/chain_proxy.rs`, `benches/tower_reaction.rs`): whole messages read and written as
//! bytes, so a proxy can look at a JSON-RPC call and its answer, or withhold either.

use eyre::{eyre, Result};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// One HTTP/1.1 message with a `content-length` body, raw; `None` at end of stream.
pub async fn read_message<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
) -> Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        message.extend_from_slice(line.as_bytes());
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body).await?;
    message.extend(body);
    Ok(Some(message))
}

/// Sends `request` (a whole HTTP message) to `upstream` (`http://host:port`) over a new
/// connection and returns its answer, raw.
pub async fn forward(upstream: &str, request: &[u8]) -> Result<Vec<u8>> {
    let conn = TcpStream::connect(upstream.trim_start_matches("http://")).await?;
    let (read, mut write) = conn.into_split();
    write.write_all(request).await?;
    read_message(&mut BufReader::new(read))
        .await?
        .ok_or_else(|| eyre!("upstream closed"))
}

/// The body of a whole HTTP message: what follows the blank line after the headers.
pub fn body(message: &[u8]) -> Option<&[u8]> {
    let start = message.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some(&message[start..])
}
