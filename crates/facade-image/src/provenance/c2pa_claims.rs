//! Claims from a C2PA manifest store, read and validated by the official SDK.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::{source_type_says_generated, Binding, Claim, ClaimSource, Signature};

/// One claim per manifest in the store (the active one first), with the signature and binding
/// of the active manifest as the SDK validated them.
pub fn read(
    context: &std::sync::Arc<c2pa::Context>,
    format: &str,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> Vec<Claim> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        c2pa::Reader::from_shared_context(context)
            .with_stream(format, Cursor::new(bytes))
            .map(|reader| reader.json())
    }));
    let json = match outcome {
        Ok(Ok(json)) => json,
        Ok(Err(e)) => {
            problems.push(format!("C2PA manifest store unreadable ({e})"));
            return Vec::new();
        }
        Err(_) => {
            problems.push("C2PA manifest store unreadable (the reader failed; caught)".into());
            return Vec::new();
        }
    };
    let Ok(store) = serde_json::from_str::<Value>(&json) else {
        problems.push("C2PA reader returned no JSON".into());
        return Vec::new();
    };
    claims_of(&store)
}

/// The claims of a manifest store report (the SDK's `Reader::json`).
pub fn claims_of(store: &Value) -> Vec<Claim> {
    let active = store["active_manifest"].as_str().unwrap_or_default();
    let Some(manifests) = store["manifests"].as_object() else {
        return Vec::new();
    };
    let mut labels: Vec<&String> = manifests.keys().collect();
    labels.sort_by_key(|label| label.as_str() != active);
    labels
        .into_iter()
        .map(|label| {
            let mut claim = manifest_claim(&manifests[label]);
            if label == active {
                let results = &store["validation_results"]["activeManifest"];
                claim.signature = signature(results);
                claim.binding = binding(results);
            }
            claim
        })
        .collect()
}

fn manifest_claim(manifest: &Value) -> Claim {
    let actions: Vec<&Value> = manifest["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| {
            a["label"]
                .as_str()
                .unwrap_or_default()
                .starts_with("c2pa.actions")
        })
        .flat_map(|a| a["data"]["actions"].as_array().into_iter().flatten())
        .collect();
    // The action that says how the content came to be: one with a source type, else creation.
    let origin = actions
        .iter()
        .find(|a| a["digitalSourceType"].is_string())
        .or_else(|| actions.iter().find(|a| a["action"] == "c2pa.created"));
    let field = match origin.and_then(|a| a["action"].as_str()) {
        Some(action) => format!("c2pa.actions: {action}"),
        None => "c2pa claim".to_owned(),
    };
    let mut claim = Claim::new(ClaimSource::C2pa, field);
    if let Some(action) = origin {
        claim.digital_source_type = action["digitalSourceType"].as_str().map(str::to_owned);
        claim.ai_generated = claim
            .digital_source_type
            .as_deref()
            .and_then(source_type_says_generated)
            .or_else(|| says_generated_with_ai(action));
        claim.generator = agent_name(&action["softwareAgent"]);
    }
    claim.tool = claim_generator(manifest);
    if claim.generator.is_none() && claim.ai_generated == Some(true) {
        claim.generator = claim.tool.clone();
    }
    let signer = &manifest["signature_info"];
    claim.signer = signer["common_name"]
        .as_str()
        .or_else(|| signer["issuer"].as_str())
        .map(str::to_owned);
    claim
}

/// Manifests written before C2PA 1.3 had no source type; creators said it in words
/// (Azure OpenAI's DALL-E 3 images: `"description": "Generated with AI"`).
fn says_generated_with_ai(action: &Value) -> Option<bool> {
    let created = action["action"] == "c2pa.created";
    let description = action["description"].as_str().unwrap_or_default();
    (created
        && description
            .to_ascii_lowercase()
            .contains("generated with ai"))
    .then_some(true)
}

/// A software agent: a name, or `{name, version}`.
fn agent_name(agent: &Value) -> Option<String> {
    match agent {
        Value::String(name) => Some(name.clone()),
        Value::Object(_) => agent["name"]
            .as_str()
            .map(|name| match agent["version"].as_str() {
                Some(version) => format!("{name} {version}"),
                None => name.to_owned(),
            }),
        _ => None,
    }
}

/// The claim generator: its info's first entry, else the legacy string.
fn claim_generator(manifest: &Value) -> Option<String> {
    agent_name(&manifest["claim_generator_info"][0])
        .or_else(|| manifest["claim_generator"].as_str().map(str::to_owned))
}

fn codes(results: &Value, kind: &str) -> Vec<String> {
    results[kind]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|status| status["code"].as_str().map(str::to_owned))
        .collect()
}

/// The signature as the SDK judged it: a broken claim signature or credential is `invalid`;
/// a sound one whose signer no trust anchor vouches for is `untrusted`.
fn signature(results: &Value) -> Option<Signature> {
    let failures = codes(results, "failure");
    let broken = failures.iter().any(|c| {
        c.starts_with("claimSignature.")
            || matches!(
                c.as_str(),
                "signingCredential.invalid"
                    | "signingCredential.revoked"
                    | "signingCredential.expired"
            )
    });
    if broken {
        Some(Signature::Invalid)
    } else if failures.iter().any(|c| c == "signingCredential.untrusted") {
        Some(Signature::Untrusted)
    } else if codes(results, "success")
        .iter()
        .any(|c| c == "signingCredential.trusted")
    {
        Some(Signature::Valid)
    } else if codes(results, "success")
        .iter()
        .any(|c| c == "claimSignature.validated")
    {
        Some(Signature::Untrusted)
    } else {
        None
    }
}

/// The hard binding: whether the manifest's hash of the asset (data, boxes or BMFF hash)
/// matches the bytes.
fn binding(results: &Value) -> Option<Binding> {
    let is_hash = |code: &String, outcome: &str| {
        code.starts_with("assertion.")
            && code.contains("Hash.")
            && code.ends_with(outcome)
            && !code.starts_with("assertion.hashedURI")
    };
    if codes(results, "failure")
        .iter()
        .any(|c| is_hash(c, "mismatch") || is_hash(c, "malformed"))
    {
        Some(Binding::Invalid)
    } else if codes(results, "success")
        .iter()
        .any(|c| is_hash(c, "match"))
    {
        Some(Binding::Valid)
    } else {
        None
    }
}
