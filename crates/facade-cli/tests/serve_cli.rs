//! `facade serve` driven over real HTTP: the binary on a free port, a real client (ureq),
//! real images, a real store on disk.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{agent, answer, examples, scan_line, store_simulated_run, Server, TOKEN};
use serde_json::Value;

fn post_bytes(agent: &ureq::Agent, url: &str, bytes: &[u8], token: Option<&str>) -> (u16, Value) {
    let mut request = agent
        .post(url)
        .header("Content-Type", "application/octet-stream");
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    answer(request.send(bytes))
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    answer(
        agent
            .get(url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call(),
    )
}

fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    answer(
        agent
            .post(url)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes()),
    )
}

/// A multipart/form-data body with one `image` field per file.
fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "facade-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn without_path(mut record: Value) -> Value {
    record.as_object_mut().unwrap().remove("path");
    record
}

#[test]
fn scans_match_the_cli_need_the_token_and_are_cached_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("f.db"), &["--token", TOKEN]);
    let agent = agent();
    let image_path = examples().join("astronaut.png");
    let image = std::fs::read(&image_path).unwrap();

    let (status, body) = answer(agent.get(&server.url("/healthz")).call());
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(
        post_bytes(&agent, &server.url("/v1/scan"), &image, None).0,
        401
    );
    assert_eq!(
        post_bytes(&agent, &server.url("/v1/scan"), &image, Some("wrong")).0,
        401
    );

    let mut response = agent
        .post(&server.url("/v1/scan"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(&image[..])
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-facade-cache"], "miss");
    let first: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(first["path"], "upload");
    // The same record as one line of `facade scan`, but for the name.
    assert_eq!(
        without_path(first.clone()),
        without_path(scan_line(&image_path))
    );

    // The same bytes again, as a multipart upload: from the store, same record.
    let (content_type, body) = multipart(&[("astronaut.png", &image)]);
    let mut response = agent
        .post(&server.url("/v1/scan"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", &content_type)
        .send(&body[..])
        .unwrap();
    assert_eq!(response.headers()["x-facade-cache"], "hit");
    let again: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(again["path"], "astronaut.png");
    assert_eq!(without_path(again), without_path(first.clone()));

    // A file declaring itself generated: the API's record says so, as `facade scan`'s does.
    let declared = facade_image::fixtures::png_with_chunks(
        &image,
        &[facade_image::fixtures::png_text(
            "parameters",
            "portrait\nSteps: 20, Sampler: Euler a, Model: dreamshaper_8",
        )],
    );
    let (status, record) = post_bytes(&agent, &server.url("/v1/scan"), &declared, Some(TOKEN));
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["verdict"], "ai");
    assert_eq!(record["verdict_source"], "provenance");
    assert_eq!(
        record["provenance"]["generator"],
        "AUTOMATIC1111 (dreamshaper_8)"
    );
    assert_eq!(
        record["score"], first["score"],
        "the detectors' score is untouched"
    );

    // Its thumbnail is served by hash; a path-like name is not a hash.
    let sha = first["sha256"].as_str().unwrap();
    let mut thumb = agent
        .get(&server.url(&format!("/v1/images/{sha}")))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let jpeg = thumb.body_mut().read_to_vec().unwrap();
    assert!(image::load_from_memory(&jpeg).is_ok());
    assert_eq!(
        get(&agent, &server.url("/v1/images/..%2F..%2Fetc%2Fpasswd")).0,
        400
    );
    assert_eq!(
        get(
            &agent,
            &server.url(&format!("/v1/images/{}", "0".repeat(64)))
        )
        .0,
        404
    );
}

#[test]
fn bad_uploads_get_clear_errors_and_batches_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("f.db"), &["--max-body-mib", "1"]);
    let agent = agent();
    let url = server.url("/v1/scan");

    // Handled (200), and the record says what became of the bytes, as in a batch.
    let (status, body) = post_bytes(&agent, &url, b"not an image at all", None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "error");
    assert!(
        body["error"].as_str().unwrap().contains("not an image"),
        "{body}"
    );
    assert_eq!(body["sha256"].as_str().unwrap().len(), 64);

    let (status, body) = post_bytes(&agent, &url, b"", None);
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("no image"),
        "{body}"
    );

    // Refused on the declared length, before any of the body is sent.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(
        stream,
        "POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    )
    .unwrap();
    let mut reply = vec![0u8; 64];
    let n = stream.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    let good = std::fs::read(examples().join("astronaut-400.jpg")).unwrap();
    let broken: &[u8] = b"\x89PNG\r\n\x1a\n but no chunks follow";
    let (content_type, body) = multipart(&[("a.jpg", &good), ("b.png", broken), ("c.jpg", &good)]);
    let (status, body) = answer(
        agent
            .post(&server.url("/v1/scan/batch"))
            .header("Content-Type", &content_type)
            .send(&body[..]),
    );
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.jpg", "b.png", "c.jpg"]);
    assert_eq!(records[0]["status"], "ok");
    assert_eq!(records[1]["status"], "error");
    assert_eq!(records[2]["faces"], records[0]["faces"]);

    let (status, body) = answer(agent.get(&server.url("/v1/nothing")).call());
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[test]
fn a_full_queue_answers_503_and_the_service_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("f.db"),
        &["--workers", "1", "--queue", "2"],
    );
    // Distinct noise images (no cache hits), large enough to keep the one worker busy.
    let images: Vec<Vec<u8>> = (0..12u32)
        .map(|seed| {
            let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
            let noise = image::RgbImage::from_fn(1200, 1200, |_, _| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
            });
            let mut png = Vec::new();
            noise
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        })
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = images
            .iter()
            .map(|png| {
                let url = server.url("/v1/scan");
                scope.spawn(move || post_bytes(&agent(), &url, png, None).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    let served = statuses.iter().filter(|&&s| s == 200).count();
    assert!(busy >= 1, "some were refused: {statuses:?}");
    assert!(served >= 1, "some were served: {statuses:?}");
    assert_eq!(
        busy + served,
        statuses.len(),
        "only 200 or 503: {statuses:?}"
    );
    let (status, _) = answer(agent().get(&server.url("/healthz")).call());
    assert_eq!(status, 200);
}

#[test]
fn a_stalled_upload_times_out_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("f.db"), &["--timeout-s", "1"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    // Promise 1000 bytes, send 10, then wait.
    write!(
        stream,
        "POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut reply = vec![0u8; 64];
    let n = stream.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn reviews_are_validated_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");

    // A run of `facade networks` kept in the store gives networks to review.
    store_simulated_run(dir.path(), &db);

    let server = Server::start(&db, &["--token", TOKEN]);
    let agent = agent();
    let (status, body) = get(&agent, &server.url("/v1/networks"));
    assert_eq!(status, 200);
    let networks = body["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 6, "the six planted networks: {body}");
    let id = networks[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = get(&agent, &server.url(&format!("/v1/networks/{id}")));
    assert_eq!(status, 200);
    assert_eq!(
        body["accounts"].as_array().unwrap().len() as u64,
        networks[0]["members"].as_u64().unwrap()
    );
    assert!(!body["network"]["record"]["evidence"]
        .as_array()
        .unwrap()
        .is_empty());
    let members: u64 = networks
        .iter()
        .map(|n| n["members"].as_u64().unwrap())
        .sum();
    let (status, body) = get(&agent, &server.url("/v1/accounts"));
    assert_eq!(status, 200);
    // The flagged networks' members: nearly all of the 118 planted accounts.
    assert_eq!(body["accounts"].as_array().unwrap().len() as u64, members);
    assert!(members >= 110, "{members}");

    let review = serde_json::json!({
        "subject": format!("network:{id}"),
        "decision": "confirm",
        "note": "same links within seconds",
        "reviewer": "ana"
    });
    let (status, created) = post_json(&agent, &server.url("/v1/reviews"), &review);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["reviewer"], "ana");
    let bad = [
        serde_json::json!({"subject": "network:n000000000000", "decision": "confirm"}),
        serde_json::json!({"subject": "user:1", "decision": "confirm"}),
        serde_json::json!({"subject": "image:abc", "decision": "dismiss"}),
    ];
    for body in &bad {
        let (status, answer) = post_json(&agent, &server.url("/v1/reviews"), body);
        assert!(status == 400 || status == 404, "{body}: {status} {answer}");
        assert!(answer["error"].is_string());
    }
    let (status, _) = post_json(
        &agent,
        &server.url("/v1/reviews"),
        &serde_json::json!({"subject": "account:1", "decision": "maybe"}),
    );
    assert_eq!(status, 422);
    drop(server); // SIGKILL: no clean shutdown

    let server = Server::start(&db, &["--token", TOKEN]);
    let (status, body) = get(
        &agent,
        &server.url(&format!("/v1/reviews?subject=network:{id}")),
    );
    assert_eq!(status, 200);
    let reviews = body["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0]["note"], "same links within seconds");
    assert_eq!(reviews[0]["id"], created["id"]);
}

#[test]
fn the_openapi_document_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("f.db"), &["--token", TOKEN]);
    let (status, doc) = answer(agent().get(&server.url("/openapi.json")).call());
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/healthz",
        "/v1/scan",
        "/v1/scan/batch",
        "/v1/images/{sha256}",
        "/v1/networks",
        "/v1/networks/{id}",
        "/v1/accounts",
        "/v1/reviews",
    ] {
        assert!(paths.contains_key(route), "{route} documented");
    }
    let (status, page) = answer(agent().get(&server.url("/")).call());
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("facade review"));
}
