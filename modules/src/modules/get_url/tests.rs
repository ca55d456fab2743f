use super::*;
use crate::modules::testing::{v, Harness};
use std::io::{Read, Write};
use std::net::TcpListener;

/// A one-shot HTTP server on 127.0.0.1 answering `response` to every request; returns its
/// URL and a counter of the requests it got.
fn server(response: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    (url, count)
}

const HELLO: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

#[test]
fn downloads_then_checksum_match_makes_no_request() {
    let h = Harness::new();
    let (url, count) = server(HELLO);
    let args = [
        ("url", v(&format!("{url}/a/hello.txt"))),
        ("dest", v(&h.hs("hello.txt"))),
        ("checksum", v(&format!("sha256:{HELLO_SHA256}"))),
    ];
    let (changed, out) = h.run(&GetUrlModule, &args).unwrap();
    assert!(changed);
    assert_eq!(
        std::fs::read_to_string(h.h("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(out.data["status_code"].as_i64(), Some(200));
    assert_eq!(out.data["msg"].as_str(), Some("OK (6 bytes)"));
    assert_eq!(
        out.data["checksum_src"].as_str(),
        Some("f572d396fae9206628714fb2ce00f72e94f2258f")
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (changed, out) = h.run(&GetUrlModule, &args).unwrap();
    assert!(!changed);
    assert_eq!(out.data["msg"].as_str(), Some("file already exists"));
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no request"
    );
}

#[test]
fn wrong_checksum_fails_and_writes_nothing() {
    let h = Harness::new();
    let (url, _) = server(HELLO);
    let args = [
        ("url", v(&format!("{url}/hello.txt"))),
        ("dest", v(&h.hs("hello.txt"))),
        ("checksum", v("sha256:00ff")),
    ];
    let err = h.run(&GetUrlModule, &args).unwrap_err().to_string();
    assert!(err.contains("did not match 00ff"), "{err}");
    assert!(!h.h("hello.txt").exists());
}

#[test]
fn dest_directory_takes_the_content_disposition_name() {
    let h = Harness::new();
    let (url, _) = server(
        "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Disposition: attachment; \
         filename=\"../named.txt\"\r\nConnection: close\r\n\r\nhello\n",
    );
    let args = [("url", v(&format!("{url}/x"))), ("dest", v(&h.hs("")))];
    let (_, out) = h.run(&GetUrlModule, &args).unwrap();
    assert!(h.h("named.txt").exists());
    assert_eq!(out.data["dest"].as_str(), Some(h.hs("named.txt").as_str()));
}

#[test]
fn not_found_fails() {
    let h = Harness::new();
    let (url, _) =
        server("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let args = [("url", v(&format!("{url}/x"))), ("dest", v(&h.hs("x")))];
    let err = h.run(&GetUrlModule, &args).unwrap_err().to_string();
    assert!(err.contains("HTTP Error 404: Not Found"), "{err}");
}

#[test]
fn file_urls_and_refused_schemes() {
    let h = Harness::new();
    std::fs::write(h.h("src.bin"), b"data").unwrap();
    let args = [
        ("url", v(&format!("file://{}", h.hs("src.bin")))),
        ("dest", v(&h.hs("copy.bin"))),
        ("force", v("yes")),
    ];
    h.run(&GetUrlModule, &args).unwrap();
    assert_eq!(std::fs::read(h.h("copy.bin")).unwrap(), b"data");
    let (changed, _) = h.run(&GetUrlModule, &args).unwrap();
    assert!(!changed, "same content: unchanged");
    let ftp = [("url", v("ftp://127.0.0.1/x")), ("dest", v(&h.hs("y")))];
    let err = h.run(&GetUrlModule, &ftp).err().unwrap().to_string();
    assert!(err.contains("ftp://127.0.0.1/x"), "{err}");
}

#[test]
fn url_filenames() {
    assert_eq!(url_filename("http://h/a/b.tar.gz?x=1"), "b.tar.gz");
    assert_eq!(url_filename("http://h/"), "index.html");
    assert_eq!(url_filename("http://h"), "index.html");
}
