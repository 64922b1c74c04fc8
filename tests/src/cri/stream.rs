//! Interactive streaming as `kubectl exec -it` and `kubectl attach` reach a runtime: CRI `Exec`
//! and `Attach` answer a URL on containerd's stream server, and the client speaks Kubernetes'
//! remotecommand protocol to it over a WebSocket.
//!
//! The protocol, as containerd's stream server (its copy of kubelet's
//! `cri/streaming/remotecommand` and apimachinery's `wsstream`) implements it:
//! - a GET upgrade to the URL CRI returned; the request's options (tty, stdin, ...) are those
//!   of the CRI call, held by the server under the URL's one-time token;
//! - `Sec-WebSocket-Protocol` picks the framing: `channel.k8s.io` and `v4.channel.k8s.io` are
//!   binary messages whose first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error or
//!   status, 4 resize); the `base64.` variants are text. Only from `v4.` on does channel 3 carry
//!   a JSON `metav1.Status` (`Success`, or `Failure` with reason `NonZeroExitCode` and the code
//!   in `details.causes[].message`); before, only failures, as plain text;
//! - the server first sends an empty message on stdout (or stderr, or error) when it is ready;
//! - channel 4 takes JSON `{"Width":W,"Height":H}` (client-go's `TerminalSize`);
//! - `v5.channel.k8s.io` adds a half-close of stdin (message `[255, 0]`); kubelet's streaming
//!   code and so containerd's (1.6 to 2.1) do not offer it, and v4 has no way to close stdin
//!   but closing the whole connection.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Bytes, Message, WebSocket};

use super::api::{AttachRequest, ExecRequest};
use super::{Cri, CriResult, CALL_TIMEOUT};

/// The remotecommand channel of stdin.
pub const STDIN: u8 = 0;
/// The remotecommand channel of stdout (with a tty: the terminal's whole output).
pub const STDOUT: u8 = 1;
/// The remotecommand channel of stderr (none with a tty).
pub const STDERR: u8 = 2;
/// The error channel; a JSON `metav1.Status` from protocol v4 on.
pub const STATUS: u8 = 3;
/// The terminal size channel, client to server.
pub const RESIZE: u8 = 4;
/// The first byte of v5's close message; the second names the channel.
pub const STREAM_CLOSE: u8 = 255;
/// Binary framing with the JSON status: what the CRI stream servers speak at best.
pub const V4: &str = "v4.channel.k8s.io";
/// v4 plus the stdin half-close.
pub const V5: &str = "v5.channel.k8s.io";

/// How long one read of the socket blocks before the deadline is looked at again.
const READ_SLICE: Duration = Duration::from_millis(50);

/// What the client asks CRI to stream: stdin, a tty (which merges stderr into stdout), and
/// stdout and stderr always.
#[derive(Debug, Clone, Copy)]
pub struct StreamOpts {
    pub stdin: bool,
    pub tty: bool,
}

impl Cri {
    /// CRI Exec: the stream server's URL for `cmd` in container `id`.
    pub fn exec(&self, id: &str, cmd: &[&str], opts: StreamOpts) -> CriResult<String> {
        let mut c = self.runtime.clone();
        let req = ExecRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty: opts.tty,
            stdin: opts.stdin,
            stdout: true,
            // A tty has no stderr of its own: the server refuses both.
            stderr: !opts.tty,
        };
        self.call("Exec", CALL_TIMEOUT, async move {
            Ok(c.exec(req).await?.into_inner().url)
        })
    }

    /// CRI Attach: the stream server's URL for the main process of container `id`.
    pub fn attach(&self, id: &str, opts: StreamOpts) -> CriResult<String> {
        let mut c = self.runtime.clone();
        let req = AttachRequest {
            container_id: id.to_string(),
            stdin: opts.stdin,
            tty: opts.tty,
            stdout: true,
            stderr: !opts.tty,
        };
        self.call("Attach", CALL_TIMEOUT, async move {
            Ok(c.attach(req).await?.into_inner().url)
        })
    }
}

/// One remotecommand session over a WebSocket: what arrived on each channel so far.
pub struct Session {
    ws: WebSocket<TcpStream>,
    /// The subprotocol the server picked.
    pub protocol: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Channel 3: the JSON status (v4) or an error text.
    pub status: Vec<u8>,
    /// The server has sent its ready message (an empty first message).
    pub ready: bool,
    /// The server closed the connection (after the status, when the process ended).
    pub closed: bool,
}

impl Session {
    /// Opens the WebSocket to `url` (the `http://host:port/path` CRI answered) asking for
    /// `protocols` in order of preference. Panics when the server refuses the upgrade.
    #[track_caller]
    pub fn open(url: &str, protocols: &[&str]) -> Session {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("stream URL {url:?} is not http:// (TLS is off here)"));
        let host = rest.split('/').next().unwrap_or(rest);
        let tcp = TcpStream::connect(host)
            .unwrap_or_else(|e| panic!("connect to the stream server {host} of {url}: {e}"));
        tcp.set_read_timeout(Some(READ_SLICE))
            .and_then(|()| tcp.set_write_timeout(Some(CALL_TIMEOUT)))
            .unwrap_or_else(|e| panic!("socket timeouts for {url}: {e}"));
        let mut req = format!("ws://{rest}")
            .into_client_request()
            .unwrap_or_else(|e| panic!("stream URL {url:?}: {e}"));
        let header = HeaderValue::from_str(&protocols.join(", "))
            .unwrap_or_else(|e| panic!("protocols {protocols:?}: {e}"));
        req.headers_mut().insert("Sec-WebSocket-Protocol", header);
        // The handshake is blocking: the short read timeout would break it.
        tcp.set_read_timeout(Some(CALL_TIMEOUT))
            .unwrap_or_else(|e| panic!("socket timeout for {url}: {e}"));
        let (ws, resp) = tungstenite::client::client(req, tcp)
            .unwrap_or_else(|e| panic!("WebSocket upgrade of {url} with {protocols:?}: {e}"));
        ws.get_ref()
            .set_read_timeout(Some(READ_SLICE))
            .unwrap_or_else(|e| panic!("socket timeout for {url}: {e}"));
        let protocol = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Session {
            ws,
            protocol,
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: Vec::new(),
            ready: false,
            closed: false,
        }
    }

    /// Sends `data` on `channel` (binary framing).
    #[track_caller]
    pub fn send(&mut self, channel: u8, data: &[u8]) {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        self.ws
            .send(Message::Binary(Bytes::from(frame)))
            .unwrap_or_else(|e| panic!("send {} bytes on channel {channel}: {e}", data.len()));
    }

    /// Writes `text` to the process's stdin.
    #[track_caller]
    pub fn stdin(&mut self, text: &str) {
        self.send(STDIN, text.as_bytes());
    }

    /// Resizes the terminal to `width` columns and `height` rows.
    #[track_caller]
    pub fn resize(&mut self, width: u16, height: u16) {
        let size = serde_json::json!({ "Width": width, "Height": height });
        self.send(RESIZE, size.to_string().as_bytes());
    }

    /// Closes stdin, half-way (v5 only: the process reads EOF, its output still comes back).
    #[track_caller]
    pub fn close_stdin(&mut self) {
        assert_eq!(self.protocol, V5, "only {V5} can close stdin alone");
        self.send(STREAM_CLOSE, &[STDIN]);
    }

    /// Reads messages until `done(self)` holds or the server closes; false when `timeout`
    /// passed first.
    #[track_caller]
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&Session) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if self.closed || Instant::now() >= deadline {
                return done(self);
            }
            match self.ws.read() {
                Ok(Message::Binary(data)) => self.take(&data),
                Ok(Message::Close(_)) => self.closed = true,
                Ok(Message::Text(t)) => panic!("text message on a binary protocol: {t:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // The server may drop the TCP connection right after its close frame.
                Err(_) => self.closed = true,
            }
        }
        true
    }

    /// Reads until the server closes the connection (the process ended and its status was
    /// sent); panics after `timeout` with what arrived.
    #[track_caller]
    pub fn wait_closed(&mut self, timeout: Duration) {
        if !self.read_until(timeout, |s| s.closed) {
            panic!("the stream server did not close within {timeout:?}: {self:?}");
        }
    }

    /// Sends a close frame and drops the connection (what a client does on detach).
    pub fn close(mut self) {
        // The server may already be gone: nothing to report then.
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }

    /// Channel 3 parsed: the v4 `metav1.Status`. Panics when it is empty or not JSON.
    #[track_caller]
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.status)
            .unwrap_or_else(|e| panic!("the status channel holds no JSON status ({e}): {self:?}"))
    }

    /// The exit code the v4 status reports: 0 for `Success`, else the `ExitCode` cause of a
    /// `NonZeroExitCode` failure. Panics on any other status (e.g. an internal error).
    #[track_caller]
    pub fn exit_code(&self) -> i32 {
        let st = self.status_json();
        match st["status"].as_str() {
            Some("Success") => 0,
            Some("Failure") if st["reason"] == "NonZeroExitCode" => st["details"]["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["reason"] == "ExitCode")
                .and_then(|c| c["message"].as_str())
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("a NonZeroExitCode status without its code: {st}")),
            _ => panic!("the status is no exit: {st}"),
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Files one binary message under its channel.
    fn take(&mut self, data: &[u8]) {
        let Some((&channel, payload)) = data.split_first() else {
            return;
        };
        self.ready = true;
        match channel {
            STDOUT => self.stdout.extend_from_slice(payload),
            STDERR => self.stderr.extend_from_slice(payload),
            STATUS => self.status.extend_from_slice(payload),
            other => panic!("a message on channel {other} from the server: {data:?}"),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol)
            .field("stdout", &self.stdout_text())
            .field("stderr", &self.stderr_text())
            .field("status", &String::from_utf8_lossy(&self.status))
            .field("ready", &self.ready)
            .field("closed", &self.closed)
            .finish()
    }
}
