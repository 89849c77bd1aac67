//! Where a store lives, as the user writes it after `--db`: a file path (SQLite) or a
//! `postgres://` / `postgresql://` URL (PostgreSQL).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A libpq-style URL, e.g. `postgres://facade@db.internal:5432/facade`.
    Postgres(String),
}

impl Location {
    /// A URL starting `postgres://` or `postgresql://` is PostgreSQL; anything else is a path.
    pub fn parse(text: &str) -> Location {
        if is_postgres_url(text) {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// Where the store lives unless told otherwise: `$XDG_DATA_HOME/facade/facade.db`, else
    /// `~/.local/share/facade/facade.db`, else `facade.db` in the working directory.
    pub fn default_file() -> Location {
        let data_home = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".local/share"))
            });
        Location::Sqlite(match data_home {
            Some(dir) => dir.join("facade").join("facade.db"),
            None => PathBuf::from("facade.db"),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl std::str::FromStr for Location {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Location, Self::Err> {
        Ok(Location::parse(text))
    }
}

/// Shown in messages and logs with any password replaced by `***`.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

fn is_postgres_url(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` with the password of its user-info part, if any, replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match user_info.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_everything_else_a_file() {
        assert!(Location::parse("postgres://u@h/db").is_postgres());
        assert!(Location::parse("PostgreSQL://u@h/db").is_postgres());
        assert_eq!(
            Location::parse("data/postgres.db"),
            Location::Sqlite("data/postgres.db".into())
        );
        assert_eq!(
            Location::parse("postgres:/x"),
            Location::Sqlite("postgres:/x".into())
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        let shown = Location::parse("postgres://facade:s3cret@db:5432/facade?sslmode=disable");
        assert_eq!(
            shown.to_string(),
            "postgres://facade:***@db:5432/facade?sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://facade@db/facade"),
            "postgres://facade@db/facade"
        );
        assert_eq!(redacted("postgres://a:b@c@h/d"), "postgres://a:***@h/d");
    }
}
