//! The native transport on real loopback sockets: bodies bounded, GETs
//! without a body, connection failures retryable, https refused.

#![cfg(not(target_arch = "wasm32"))]

use http_client::native::{NativeTransport, block_on};
use http_client::{Request, Transport, TransportError};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Serves one request: returns the request head it saw.
fn serve_once(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = String::new();
        let mut r = BufReader::new(s.try_clone().unwrap());
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            head.push_str(&line);
        }
        write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        head
    });
    (url, handle)
}

#[test]
fn a_get_sends_no_body_and_reads_the_response() {
    let (url, server) = serve_once("hello");
    let r = block_on(NativeTransport::default().send(&Request::get(url).header("X-Test", "1"), 1024)).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let head = server.join().unwrap().to_ascii_lowercase();
    assert!(head.contains("x-test: 1") && !head.contains("transfer-encoding"), "{head}");
}

#[test]
fn bodies_are_bounded() {
    let (url, _server) = serve_once("0123456789");
    let err = block_on(NativeTransport::default().send(&Request::get(url), 4)).unwrap_err();
    assert_eq!(err, TransportError::TooLarge { limit: 4 });
}

#[test]
fn refused_connections_are_worth_retrying_and_https_is_not_spoken() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let t = NativeTransport::default();
    let err = block_on(t.send(&Request::get(format!("http://127.0.0.1:{port}/")), 10)).unwrap_err();
    assert!(matches!(err, TransportError::Connection(_)), "{err:?}");
    let err = block_on(t.send(&Request::get("https://storage.googleapis.com/"), 10)).unwrap_err();
    assert!(matches!(err, TransportError::Refused(_)), "{err:?}");
    assert_ne!(t.random(), t.random());
}
