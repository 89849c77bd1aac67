use std::io::Cursor;

use super::*;
use crate::fixtures::{
    jpeg_with_xmp, png_chunk, png_text, png_with_chunks, shared_data_dir, skip_unless_ci,
    xmp_digital_source_type,
};

const TRAINED: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

fn picture() -> image::RgbImage {
    image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    })
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    picture()
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("encode");
    bytes
}

fn read(bytes: &[u8]) -> Reading {
    ProvenanceReader::default().read(bytes)
}

#[test]
fn a_file_that_says_nothing_has_no_provenance() {
    for format in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::WebP,
    ] {
        assert_eq!(read(&encoded(format)), Reading::default(), "{format:?}");
    }
}

#[test]
fn xmp_digital_source_type_in_a_jpeg_says_generated() {
    let jpeg = jpeg_with_xmp(
        &encoded(image::ImageFormat::Jpeg),
        &xmp_digital_source_type("trainedAlgorithmicMedia"),
    );
    let provenance = read(&jpeg).provenance.expect("provenance");
    assert_eq!(provenance.ai_generated, Some(true));
    assert_eq!(provenance.source, ClaimSource::Xmp);
    assert_eq!(provenance.digital_source_type.as_deref(), Some(TRAINED));
    assert_eq!(provenance.signature, None);
    // The pixels still decode: metadata is read beside them, not instead.
    assert!(crate::decode(&jpeg, &crate::DecodeLimits::default()).is_ok());
}

#[test]
fn a_camera_capture_declaration_says_not_generated() {
    let jpeg = jpeg_with_xmp(
        &encoded(image::ImageFormat::Jpeg),
        &xmp_digital_source_type("digitalCapture"),
    );
    assert_eq!(
        read(&jpeg).provenance.and_then(|p| p.ai_generated),
        Some(false)
    );
}

#[test]
fn element_and_resource_forms_of_xmp_are_read() {
    let element = r#"<rdf:Description><Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType><xmp:CreatorTool>Adobe Photoshop 25.0</xmp:CreatorTool></rdf:Description>"#;
    let claim = claims::from_xmp(element).expect("claim");
    assert_eq!(claim.ai_generated, Some(true));
    assert_eq!(claim.tool.as_deref(), Some("Adobe Photoshop 25.0"));
    let resource = r#"<iptcExt:DigitalSourceType rdf:resource="http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia"/>"#;
    assert_eq!(
        claims::from_xmp(resource).and_then(|c| c.ai_generated),
        Some(true)
    );
}

#[test]
fn automatic1111_parameters_name_the_checkpoint() {
    let text = "portrait of a man, studio light\nNegative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0";
    let png = png_with_chunks(
        &encoded(image::ImageFormat::Png),
        &[png_text("parameters", text)],
    );
    let provenance = read(&png).provenance.expect("provenance");
    assert_eq!(provenance.ai_generated, Some(true));
    assert_eq!(provenance.source, ClaimSource::PngText);
    assert_eq!(
        provenance.generator.as_deref(),
        Some("AUTOMATIC1111 (v1-5-pruned-emaonly)")
    );
}

#[test]
fn comfyui_and_invokeai_records_are_generations() {
    let prompt = r#"{"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}, "3": {"class_type": "KSampler", "inputs": {"seed": 1}}}"#;
    let invoke =
        r#"{"model": {"name": "juggernaut-xl", "base": "sdxl"}, "positive_prompt": "a face"}"#;
    let compressed = {
        let mut data = b"invokeai_metadata\0\0".to_vec();
        data.extend(miniz_oxide::deflate::compress_to_vec_zlib(
            invoke.as_bytes(),
            6,
        ));
        png_chunk(b"zTXt", &data)
    };
    let png = png_with_chunks(
        &encoded(image::ImageFormat::Png),
        &[png_text("prompt", prompt), compressed],
    );
    let provenance = read(&png).provenance.expect("provenance");
    let generators: Vec<_> = provenance
        .claims
        .iter()
        .map(|c| c.generator.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        generators,
        [
            "ComfyUI (sd_xl_base_1.0.safetensors)",
            "InvokeAI (juggernaut-xl)"
        ]
    );
    assert_eq!(provenance.ai_generated, Some(true));
}

#[test]
fn claims_disagreeing_follow_c2pa_then_xmp_then_png_text() {
    let mut xmp = Claim::new(ClaimSource::Xmp, "xmp");
    xmp.digital_source_type = Some("digitalCapture".into());
    xmp.ai_generated = Some(false);
    let mut text = Claim::new(ClaimSource::PngText, "text");
    text.generator = Some("ComfyUI".into());
    text.ai_generated = Some(true);
    let mut c2pa = Claim::new(ClaimSource::C2pa, "c2pa");
    c2pa.generator = Some("Firefly".into());
    let provenance = Provenance::from_claims(vec![text, xmp, c2pa]).expect("provenance");
    assert_eq!(provenance.source, ClaimSource::C2pa);
    assert_eq!(provenance.generator.as_deref(), Some("Firefly"));
    assert_eq!(
        provenance.digital_source_type.as_deref(),
        Some("digitalCapture")
    );
    // One claim of generation is enough; the camera claim stays among the claims.
    assert_eq!(provenance.ai_generated, Some(true));
    assert_eq!(provenance.claims.len(), 3);
}

#[test]
fn hostile_metadata_is_reported_and_never_stops_the_read() {
    let bomb = {
        let mut data = b"parameters\0\0".to_vec();
        let zeros = vec![b'a'; containers::MAX_BLOCK + 10];
        data.extend(miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 9));
        png_chunk(b"zTXt", &data)
    };
    let garbage_jumbf = png_chunk(b"caBX", b"\0\0\0\x20jumbnot really a manifest store....");
    let bad_json = png_text("prompt", "{\"4\": {\"class_type\": ");
    let no_keyword = png_chunk(b"tEXt", b"no keyword separator");
    let png = png_with_chunks(
        &encoded(image::ImageFormat::Png),
        &[bomb, garbage_jumbf, bad_json, no_keyword],
    );
    let reading = read(&png);
    let problems = reading.problems.join("\n");
    assert!(problems.contains("inflates past"), "{problems}");
    assert!(
        problems.contains("C2PA manifest store unreadable"),
        "{problems}"
    );
    assert!(problems.contains("not valid JSON"), "{problems}");
    assert!(problems.contains("without a keyword"), "{problems}");
    assert!(reading
        .problems
        .iter()
        .all(|p| p.starts_with("provenance: ")));

    // Truncated anywhere, a file's metadata walk ends quietly.
    let xmp = jpeg_with_xmp(
        &encoded(image::ImageFormat::Jpeg),
        &xmp_digital_source_type("trainedAlgorithmicMedia"),
    );
    for cut in [3, 10, 40, 200, xmp.len() / 2] {
        let _ = read(&xmp[..cut]);
        let _ = read(&png[..cut.min(png.len())]);
    }
    // An XMP packet cut inside its value says nothing rather than something wrong.
    assert_eq!(
        claims::from_xmp("<x Iptc4xmpExt:DigitalSourceType=\"http://cv.ip"),
        None
    );
}

/// A certificate chain made here (the crate ships no test signer): a root, and a signing
/// certificate it issued with the profile C2PA requires.
struct TestChain {
    root_pem: String,
    chain_pem: String,
    key_pem: String,
}

fn test_chain() -> TestChain {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let root_key = KeyPair::generate().expect("root key");
    let mut root = CertificateParams::new(Vec::<String>::new()).expect("params");
    root.distinguished_name
        .push(DnType::CommonName, "facade test root");
    root.distinguished_name
        .push(DnType::OrganizationName, "facade tests");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).expect("root");
    let issuer = Issuer::new(root, root_key);
    let key = KeyPair::generate().expect("key");
    let mut signer = CertificateParams::new(Vec::<String>::new()).expect("params");
    signer
        .distinguished_name
        .push(DnType::CommonName, "facade test generator");
    signer
        .distinguished_name
        .push(DnType::OrganizationName, "facade tests");
    signer.is_ca = IsCa::ExplicitNoCa;
    signer.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    signer.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    signer.use_authority_key_identifier_extension = true;
    let cert = signer.signed_by(&key, &issuer).expect("signing cert");
    TestChain {
        root_pem: root_cert.pem(),
        chain_pem: format!("{}{}", cert.pem(), root_cert.pem()),
        key_pem: key.serialize_pem(),
    }
}

/// `png` with a C2PA manifest saying TestDiffusion created it, signed by `chain`.
fn c2pa_signed(png: &[u8], chain: &TestChain) -> Vec<u8> {
    let signer = c2pa::create_signer::from_keys(
        chain.chain_pem.as_bytes(),
        chain.key_pem.as_bytes(),
        c2pa::SigningAlg::Es256,
        None,
    )
    .expect("signer");
    let manifest = serde_json::json!({
        "claim_generator_info": [{"name": "facade-test", "version": "1"}],
        "title": "face.png",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created",
            "softwareAgent": "TestDiffusion 3",
            "digitalSourceType": TRAINED,
        }]}}],
    });
    let context = c2pa::Context::new()
        .with_settings(c2pa::Settings::new())
        .expect("context");
    let mut builder = c2pa::Builder::from_context(context)
        .with_definition(manifest.to_string())
        .expect("manifest");
    let mut out = Cursor::new(Vec::new());
    builder
        .sign(
            signer.as_ref(),
            "image/png",
            &mut Cursor::new(png),
            &mut out,
        )
        .expect("sign");
    out.into_inner()
}

#[test]
fn a_c2pa_manifest_signed_here_reads_untrusted_then_valid_then_broken() {
    let chain = test_chain();
    let png = encoded(image::ImageFormat::Png);
    let signed = c2pa_signed(&png, &chain);

    // No trust anchors: the signature checks out, but nothing vouches for the signer.
    let reading = read(&signed);
    assert!(reading.problems.is_empty(), "{:?}", reading.problems);
    let provenance = reading.provenance.expect("provenance");
    assert_eq!(provenance.source, ClaimSource::C2pa);
    assert_eq!(provenance.ai_generated, Some(true));
    assert_eq!(provenance.generator.as_deref(), Some("TestDiffusion 3"));
    assert_eq!(provenance.digital_source_type.as_deref(), Some(TRAINED));
    assert_eq!(provenance.signature, Some(Signature::Untrusted));
    assert_eq!(provenance.binding, Some(Binding::Valid));
    assert_eq!(
        provenance.claims[0].signer.as_deref(),
        Some("facade test generator")
    );

    // The user's trust anchors: valid.
    let trusting = ProvenanceReader::with_trust_anchors(Some(&chain.root_pem)).expect("anchors");
    let trusted = trusting.read(&signed).provenance.expect("provenance");
    assert_eq!(trusted.signature, Some(Signature::Valid));
    assert!(trusting.anchors_sha256().is_some());

    // One pixel changed (decoded, changed, re-encoded with the manifest chunk put back): the
    // hard binding fails, and the claim still counts, shown as such.
    let manifest_chunk = chunk_of(&signed, b"caBX").expect("manifest chunk");
    let mut changed = picture();
    changed.put_pixel(3, 3, image::Rgb([255, 0, 0]));
    let mut repainted = Vec::new();
    changed
        .write_to(&mut Cursor::new(&mut repainted), image::ImageFormat::Png)
        .expect("encode");
    let tampered = insert_after_ihdr(&repainted, &manifest_chunk);
    let broken = read(&tampered).provenance.expect("provenance");
    assert_eq!(broken.binding, Some(Binding::Invalid));
    assert_eq!(broken.ai_generated, Some(true));

    // Stripped by re-encoding, as platforms do: nothing is left to read.
    let decoded = crate::decode(&signed, &crate::DecodeLimits::default()).expect("decode");
    let mut reencoded = Vec::new();
    decoded
        .image
        .write_to(&mut Cursor::new(&mut reencoded), image::ImageFormat::Png)
        .expect("encode");
    assert_eq!(read(&reencoded), Reading::default());
}

/// The whole chunk (length, type, data, CRC) of the first `kind` chunk of a PNG.
fn chunk_of(png: &[u8], kind: &[u8; 4]) -> Option<Vec<u8>> {
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().ok()?) as usize;
        if &png[at + 4..at + 8] == kind {
            return Some(png[at..at + 12 + length].to_vec());
        }
        at += 12 + length;
    }
    None
}

fn insert_after_ihdr(png: &[u8], chunk: &[u8]) -> Vec<u8> {
    let after_ihdr = 8 + 25;
    let mut out = png[..after_ihdr].to_vec();
    out.extend_from_slice(chunk);
    out.extend_from_slice(&png[after_ihdr..]);
    out
}

/// The six originals of `../shared/provenance`: four Midjourney 6.1 PNGs with the IPTC marker
/// and a Description naming the version, two DALL-E 3 PNGs with C2PA manifests.
#[test]
fn the_shared_originals_declare_what_made_them() {
    let dir = shared_data_dir().join("provenance");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        skip_unless_ci(
            "the_shared_originals_declare_what_made_them",
            &format!("no provenance files at {}", dir.display()),
            "put the research data set at ../shared or set FACADE_SHARED_DIR",
        );
        return;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let bytes = std::fs::read(&path).expect("read");
        let reading = read(&bytes);
        assert!(
            reading.problems.is_empty(),
            "{name}: {:?}",
            reading.problems
        );
        let provenance = reading
            .provenance
            .unwrap_or_else(|| panic!("{name}: nothing"));
        assert_eq!(provenance.ai_generated, Some(true), "{name}");
        if name.starts_with("dalle3") {
            assert_eq!(provenance.source, ClaimSource::C2pa, "{name}");
            assert_eq!(provenance.signature, Some(Signature::Untrusted), "{name}");
            assert_eq!(provenance.binding, Some(Binding::Valid), "{name}");
            let generator = provenance.generator.unwrap_or_default();
            assert!(generator.contains("DALL"), "{name}: {generator}");
        } else {
            assert_eq!(provenance.source, ClaimSource::Xmp, "{name}");
            assert_eq!(provenance.digital_source_type.as_deref(), Some(TRAINED));
            assert_eq!(
                provenance.generator.as_deref(),
                Some("Midjourney 6.1"),
                "{name}"
            );
        }
    }
}
