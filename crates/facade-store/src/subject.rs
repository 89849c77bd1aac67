//! What a review is about: `account:<id>`, `network:<id>` or `image:<sha256>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Account(String),
    Network(String),
    /// The SHA-256 of the image bytes, 64 lowercase hex digits.
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("a subject is account:<id>, network:<id> or image:<sha256>, not {0:?}")]
    Form(String),
    #[error("an image subject needs 64 lowercase hex digits (the SHA-256 of the image)")]
    ImageHash,
    #[error("a subject's id must be 1 to 256 characters, none of them a control character")]
    IdLength,
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, id) = s
            .split_once(':')
            .ok_or_else(|| SubjectError::Form(s.chars().take(80).collect()))?;
        if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
            return Err(SubjectError::IdLength);
        }
        match kind {
            "account" => Ok(Subject::Account(id.to_owned())),
            "network" => Ok(Subject::Network(id.to_owned())),
            "image" => {
                let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
                if id.len() == 64 && id.chars().all(hex) {
                    Ok(Subject::Image(id.to_owned()))
                } else {
                    Err(SubjectError::ImageHash)
                }
            }
            _ => Err(SubjectError::Form(s.chars().take(80).collect())),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Account(id) => write!(f, "account:{id}"),
            Subject::Network(id) => write!(f, "network:{id}"),
            Subject::Image(sha) => write!(f, "image:{sha}"),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
