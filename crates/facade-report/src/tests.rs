use super::*;
use facade_detect::record::{Evidence, FaceRecord, Status};

fn record(eyes: [[f64; 2]; 2], score: f64) -> Record {
    let mut evidence = std::collections::BTreeMap::new();
    evidence.insert(
        "geometry".to_owned(),
        Evidence {
            value: 3.0,
            contribution: 1.5,
        },
    );
    Record {
        path: "x".into(),
        status: Status::Ok,
        sha256: Some("ab".repeat(32)),
        width: Some(100),
        height: Some(100),
        score: Some(score),
        verdict: None,
        verdict_source: None,
        provenance: None,
        warnings: Vec::new(),
        faces: vec![FaceRecord {
            bbox: [20.0, 20.0, 80.0, 90.0],
            confidence: 0.99,
            landmarks: [eyes[0], eyes[1], [50.0, 60.0], [40.0, 75.0], [60.0, 75.0]],
            score: Some(score),
            evidence: Some(evidence),
        }],
        error: None,
    }
}

fn picture(label: &str, eyes: [[f64; 2]; 2], shade: u8) -> Picture {
    Picture {
        label: label.into(),
        image: RgbImage::from_pixel(100, 100, image::Rgb([shade, shade, shade])),
        record: record(eyes, 0.9),
    }
}

#[test]
fn the_composite_averages_pictures_and_measures_the_eyes() {
    let aligned = [
        picture("a", [[35.0, 40.0], [65.0, 40.0]], 0),
        picture("b", [[35.0, 40.0], [65.0, 40.0]], 200),
    ];
    let c = composite(&aligned).unwrap();
    assert_eq!(c.pictures, 2);
    assert_eq!(c.image.get_pixel(10, 10).0, [100, 100, 100]);
    assert!(c.eye_spread_px.unwrap() < 1e-3);
    let left = c.mean_eyes.unwrap()[0];
    assert!((left[0] - 35.0 * 2.56).abs() < 1e-3);
    let scattered = [
        picture("a", [[20.0, 30.0], [45.0, 30.0]], 0),
        picture("b", [[50.0, 50.0], [75.0, 50.0]], 0),
    ];
    let spread = composite(&scattered).unwrap().eye_spread_px.unwrap();
    assert!(spread > 40.0, "{spread}");
    assert!(composite(&[]).is_none());
}

#[test]
fn creation_dates_make_a_histogram() {
    let network = json!({"members": [
        {"created": "2019-03-01T10:00:00Z"}, {"created": "2019-03-01T11:00:00Z"},
        {"created": "2019-03-03"}, {"created": "soon"}, {}
    ]});
    let h = creation_histogram(&network);
    assert_eq!(h.counts, vec![2, 0, 1]);
    assert_eq!(h.unknown, 2);
    assert_eq!(h.start_day.map(date_of_day).as_deref(), Some("2019-03-01"));
    assert_eq!(day_number("1970-01-01"), Some(0));
    assert_eq!(date_of_day(day_number("2024-02-29").unwrap()), "2024-02-29");
    assert_eq!(day_number("2024-13-01"), None);
}

#[test]
fn the_network_report_is_self_contained_and_escapes_text() {
    let dir = tempfile::tempdir().unwrap();
    let network = json!({
        "id": "N1", "score": 0.93, "flagged": true,
        "signals": {"coordination": {"co-link": {"pairs": 3, "coordinated_posts": 40, "accounts": 3}}},
        "members": [
            {"id": "a", "handle": "<script>alert(1)</script>", "created": "2020-01-01T00:00:00Z", "posts": 5, "face": {"ai_score": 0.97}},
            {"id": "b", "handle": "bob", "created": "2020-01-02T00:00:00Z", "posts": 7, "face": null}
        ],
        "activity": {"bucket": "hour", "start": "2020-01-05T10:00:00Z", "counts": [3, 0, 9]},
        "evidence": [{"accounts": ["a", "b"], "strength": 12.0, "signals": {"co-link": {"weights": [5, 6],
            "examples": [{"posts": ["p1", "p2"], "times": ["2020-01-05T10:00:01Z", "2020-01-05T10:00:09Z"]}]}}}]
    });
    let input = NetworkInput {
        network,
        pictures: vec![picture("a", [[35.0, 40.0], [65.0, 40.0]], 90)],
    };
    let written = write_network_report(&[input], dir.path()).unwrap();
    assert_eq!(
        written,
        Written {
            sections: 1,
            pictures: 1
        }
    );
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(!html.contains("<script"), "handles are escaped");
    assert!(html.contains("&lt;script&gt;"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing to fetch"
    );
    assert!(html.contains("data:image/jpeg;base64,"));
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "composite, creation and activity"
    );
    assert!(html.contains("p1 @ 2020-01-05T10:00:01Z"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let n = &report["networks"][0];
    assert_eq!(n["composite"]["pictures"], 1);
    assert_eq!(n["creation_histogram"]["counts"], json!([1, 1]));
    assert_eq!(n["members"][0]["ai_score"], 0.97);
}

#[test]
fn the_image_report_draws_faces_and_lists_failures() {
    let dir = tempfile::tempdir().unwrap();
    let failed = Record::failed("broken.jpg".into(), "not an image".into());
    let pictures = [picture("face.png", [[35.0, 40.0], [65.0, 40.0]], 128)];
    let written = write_image_report(&pictures, &[failed], dir.path()).unwrap();
    assert_eq!(written.sections, 2);
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert_eq!(html.matches("<circle").count(), 5, "five landmarks");
    assert!(html.contains("<rect x=\"20\""));
    assert!(html.contains("broken.jpg") && html.contains("not an image"));
    assert!(html.contains("geometry"));
}

#[test]
fn a_declaration_by_the_file_is_shown_beside_the_detectors() {
    use facade_image::provenance::{Claim, Provenance};
    let dir = tempfile::tempdir().unwrap();
    let mut declared = picture("declared.png", [[35.0, 40.0], [65.0, 40.0]], 128);
    let claim: Claim = serde_json::from_value(serde_json::json!({
        "source": "xmp", "field": "Iptc4xmpExt:DigitalSourceType", "ai_generated": true,
        "digital_source_type": "trainedAlgorithmicMedia", "generator": "Midjourney <6.1>"
    }))
    .unwrap();
    declared.record.verdict = Some(facade_detect::Verdict::Real);
    declared
        .record
        .declare(Provenance::from_claims(vec![claim]));
    write_image_report(&[declared], &[], dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        html.contains("Declared by the file: AI-generated (xmp: Midjourney &lt;6.1&gt;)"),
        "{html}"
    );
    assert!(html.contains("the verdict follows this declaration"));
    assert!(html.contains("verdict <strong>ai</strong>"));
}
