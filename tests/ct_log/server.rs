//! The HTTP side of a test log: hyper HTTP/1.1 on 127.0.0.1, keep-alive,
//! the RFC 6962 §4 endpoints or the static-ct-api paths, and the
//! misbehaviours tests ask for.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{Api, B64, Log, Misbehaviour, Published, audit_path, consistency};

pub(super) async fn serve(log: Log) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let url = format!("http://{addr}/");
    *log.inner.url.lock().expect("lock") = Some(url.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let log = log.clone();
                    async move { Ok::<_, Infallible>(answer(&log, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn not_found() -> Response<Full<Bytes>> {
    respond(StatusCode::NOT_FOUND, "not found\n")
}

fn query(req: &Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(log: &Log, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    log.inner.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let misbehaviour = *log.inner.misbehaviour.lock().expect("lock");
    if path == "log_list.json" {
        // The log list naming this log, as a log list server would.
        return json(serde_json::from_str(&log.log_list_json()).expect("JSON"));
    }
    let Some(published) = log.published() else {
        return not_found();
    };
    let entries_request = path == "ct/v1/get-entries" || path.starts_with("tile/data/");
    if entries_request {
        match misbehaviour {
            Some(Misbehaviour::Stall) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return not_found();
            }
            Some(Misbehaviour::Garbage) => {
                return respond(
                    StatusCode::OK,
                    b"\x00\xff<html>garbage</html>{\"entries\":".to_vec(),
                );
            }
            Some(Misbehaviour::HugeBody) => {
                return respond(StatusCode::OK, vec![b'A'; 10 * 1024 * 1024]);
            }
            _ => {}
        }
    }
    match log.inner.api {
        Api::Rfc6962 => rfc6962(log, &req, &path, &published),
        Api::Static => tiled(log, &path, &published),
    }
}

fn json(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = respond(StatusCode::OK, value.to_string());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn bad_request(why: &str) -> Response<Full<Bytes>> {
    respond(StatusCode::BAD_REQUEST, format!("{why}\n"))
}

fn rfc6962(
    log: &Log,
    req: &Request<hyper::body::Incoming>,
    path: &str,
    published: &Published,
) -> Response<Full<Bytes>> {
    let number = |name: &str| query(req, name).and_then(|v| v.parse::<u64>().ok());
    match path {
        "ct/v1/get-sth" => respond(StatusCode::OK, published.sth_json.clone()),
        "ct/v1/get-sth-consistency" => {
            let (Some(first), Some(second)) = (number("first"), number("second")) else {
                return bad_request("first and second are required");
            };
            if first > second || second > published.size {
                return bad_request("bad sizes");
            }
            let proof = consistency(&published.levels, first, second);
            json(serde_json::json!({
                "consistency": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>()
            }))
        }
        "ct/v1/get-proof-by-hash" => {
            let (Some(hash), Some(size)) = (query(req, "hash"), number("tree_size")) else {
                return bad_request("hash and tree_size are required");
            };
            let Ok(hash) = B64.decode(hash) else {
                return bad_request("hash is not base64");
            };
            if size > published.size || size == 0 {
                return bad_request("bad tree_size");
            }
            let leaves = &published.levels[0];
            let Some(index) = (0..size)
                .rev()
                .find(|&i| leaves[i as usize][..] == hash[..])
            else {
                return not_found();
            };
            let path = audit_path(&published.levels, index, size);
            json(serde_json::json!({
                "leaf_index": index,
                "audit_path": path.iter().map(|h| B64.encode(h)).collect::<Vec<_>>()
            }))
        }
        "ct/v1/get-entries" => {
            let (Some(start), Some(end)) = (number("start"), number("end")) else {
                return bad_request("start and end are required");
            };
            if start > end || start >= published.size {
                return bad_request("start is beyond the tree");
            }
            let limit = log.inner.page_limit.load(Ordering::Relaxed) as u64;
            let end = end.min(published.size - 1).min(start + limit.min(1024) - 1);
            let mut body = String::from("{\"entries\":[");
            for (i, m) in log.materialise_range(start, end + 1).iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str("{\"leaf_input\":\"");
                body.push_str(&B64.encode(m.leaf_input(None)));
                body.push_str("\",\"extra_data\":\"");
                body.push_str(&B64.encode(m.extra_data()));
                body.push_str("\"}");
            }
            body.push_str("]}");
            respond(StatusCode::OK, body)
        }
        _ => not_found(),
    }
}

/// `x001/x234/067[.p/W]` into (1234067, W or 256).
fn tile_index(rest: &str) -> Option<(u64, u64)> {
    let (digits, width) = match rest.split_once(".p/") {
        Some((d, w)) => (d, w.parse::<u64>().ok().filter(|w| (1..256).contains(w))?),
        None => (rest, 256),
    };
    let mut index = 0u64;
    let groups: Vec<&str> = digits.split('/').collect();
    for (i, group) in groups.iter().enumerate() {
        let group = if i + 1 < groups.len() {
            group.strip_prefix('x')?
        } else {
            group
        };
        if group.len() != 3 {
            return None;
        }
        index = index * 1000 + group.parse::<u64>().ok()?;
    }
    Some((index, width))
}

fn tiled(log: &Log, path: &str, published: &Published) -> Response<Full<Bytes>> {
    if path == "checkpoint" {
        return respond(StatusCode::OK, published.checkpoint.clone());
    }
    if let Some(fingerprint) = path.strip_prefix("issuer/") {
        let Ok(fingerprint) = hex::decode(fingerprint) else {
            return not_found();
        };
        let Some(m) = (0..published.size).find_map(|i| {
            let m = log.materialise(i);
            m.chain
                .into_iter()
                .find(|c| openssl::sha::sha256(c)[..] == fingerprint[..])
        }) else {
            return not_found();
        };
        return respond(StatusCode::OK, m);
    }
    let Some(rest) = path.strip_prefix("tile/") else {
        return not_found();
    };
    let Some((level, rest)) = rest.split_once('/') else {
        return not_found();
    };
    let Some((index, width)) = tile_index(rest) else {
        return not_found();
    };
    let size = published.size;
    if level == "data" {
        let first = index * 256;
        if first + width > size {
            return not_found();
        }
        if width < 256 && first + 256 <= size {
            // The full tile exists; a partial one is not served.
            return not_found();
        }
        let mut body = Vec::new();
        for (i, m) in log
            .materialise_range(first, first + width)
            .iter()
            .enumerate()
        {
            body.extend_from_slice(&m.timestamped_entry(Some(first + i as u64)));
            if let Some(precert) = &m.precert {
                super::u24(&mut body, precert);
            }
            body.extend_from_slice(&((m.chain.len() * 32) as u16).to_be_bytes());
            for cert in &m.chain {
                body.extend_from_slice(&openssl::sha::sha256(cert));
            }
        }
        if log.inner.gzip.load(Ordering::Relaxed) {
            let mut response = respond(StatusCode::OK, super::gzip(&body));
            response.headers_mut().insert(
                hyper::header::CONTENT_ENCODING,
                hyper::header::HeaderValue::from_static("gzip"),
            );
            return response;
        }
        return respond(StatusCode::OK, body);
    }
    let Ok(level) = level.parse::<u32>() else {
        return not_found();
    };
    let height = (8 * level) as usize;
    let nodes = size >> height;
    let first = index * 256;
    if first + width > nodes || (width < 256 && first + 256 <= nodes) {
        return not_found();
    }
    let Some(row) = published.levels.get(height) else {
        return not_found();
    };
    let mut body = Vec::with_capacity(width as usize * 32);
    for hash in &row[first as usize..(first + width) as usize] {
        body.extend_from_slice(hash);
    }
    if log.inner.gzip.load(Ordering::Relaxed) {
        // Compressed without saying so: the client goes by the magic bytes.
        return respond(StatusCode::OK, super::gzip(&body));
    }
    respond(StatusCode::OK, body)
}
