//! Accounts and teams: names that parse at the edge, roles, password rules.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Why a name or password was refused. The message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// A username: trimmed, NFKC-normalized, 3-32 characters of letters, digits, `_`, `-`, `.`.
///
/// Uniqueness is decided on [`Username::key`] (NFKC + lowercase), so "admin ",
/// "ADMIN" and the fullwidth "ａｄｍｉｎ" all collide with "admin".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Username(String);

pub const USERNAME_MAX_CHARS: usize = 32;
pub const USERNAME_MIN_CHARS: usize = 3;

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name: String = raw.trim().nfkc().collect();
        let count = name.chars().count();
        if count < USERNAME_MIN_CHARS {
            return Err(InvalidInput(format!(
                "username is too short: {count} characters, expected {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS}"
            )));
        }
        if count > USERNAME_MAX_CHARS {
            return Err(InvalidInput(format!(
                "username is too long: {count} characters, expected at most {USERNAME_MAX_CHARS}"
            )));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(InvalidInput(format!(
                "username contains {bad:?}: use letters, digits, '_', '-' and '.'"
            )));
        }
        Ok(Self(name))
    }

    /// The case-folded form used for uniqueness and lookup.
    pub fn key(&self) -> String {
        name_key(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lookup key of any user-typed name: trimmed, NFKC, lowercase.
pub fn name_key(raw: &str) -> String {
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A new password: 12-128 characters, no composition rules (NIST SP 800-63B).
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let count = raw.chars().count();
        if count < PASSWORD_MIN_CHARS {
            return Err(InvalidInput(format!(
                "password is too short: {count} characters, expected at least {PASSWORD_MIN_CHARS}"
            )));
        }
        if count > PASSWORD_MAX_CHARS {
            return Err(InvalidInput(format!(
                "password is too long: {count} characters, expected at most {PASSWORD_MAX_CHARS}"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// A team name: trimmed, NFKC, 2-40 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamName(String);

pub const TEAM_NAME_MAX_CHARS: usize = 40;

impl TeamName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name: String = raw.trim().nfkc().collect();
        let count = name.chars().count();
        if !(2..=TEAM_NAME_MAX_CHARS).contains(&count) {
            return Err(InvalidInput(format!(
                "team name must be 2 to {TEAM_NAME_MAX_CHARS} characters, got {count}"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput(
                "team name contains control characters".to_owned(),
            ));
        }
        Ok(Self(name))
    }

    pub fn key(&self) -> String {
        name_key(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user may do. Stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Competitor,
    Organizer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Competitor, Role::Organizer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Competitor => "competitor",
            Role::Organizer => "organizer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                InvalidInput(format!(
                    "unknown role {raw:?}: expected competitor, organizer or admin"
                ))
            })
    }

    /// Organizers and admins may manage challenges.
    pub fn can_organize(self) -> bool {
        self >= Role::Organizer
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookalike_usernames_share_one_key() {
        let plain = Username::parse("admin").unwrap().key();
        assert_eq!(Username::parse("admin ").unwrap().key(), plain);
        assert_eq!(Username::parse("ADMIN").unwrap().key(), plain);
        assert_eq!(Username::parse("ａｄｍｉｎ").unwrap().key(), plain);
        assert_eq!(Username::parse("ａｄｍｉｎ").unwrap().as_str(), "admin");
    }

    #[test]
    fn usernames_are_bounded_and_plain() {
        assert!(Username::parse("ab").unwrap_err().0.contains("too short"));
        let long = "a".repeat(33);
        let err = Username::parse(&long).unwrap_err().0;
        assert!(err.contains("too long: 33"), "{err}");
        assert!(Username::parse("a b c").unwrap_err().0.contains("' '"));
        assert!(Username::parse("evil<script>").is_err());
        assert!(Username::parse("zoë_92").is_ok());
    }

    #[test]
    fn passwords_are_length_checked_only() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("correct horse").is_ok());
        assert!(NewPassword::parse("aaaaaaaaaaaa").is_ok());
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
        assert!(NewPassword::parse(&"é".repeat(128)).is_ok());
    }

    #[test]
    fn roles_round_trip_and_order() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("root").is_err());
        assert!(Role::Admin.can_organize());
        assert!(!Role::Competitor.can_organize());
    }
}
