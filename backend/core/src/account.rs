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

/// Whether two names look alike (UTS #39 confusable skeletons): "paypal" with a
/// Cyrillic "а", "rn" for "m", a Ukrainian "І" for an "l". Case is ignored in both
/// orders (skeleton then lowercase, lowercase then skeleton), since each order
/// catches lookalikes the other misses. A new name that looks like an existing one
/// is refused, so nobody can pose as another user or team.
pub fn looks_alike(a: &str, b: &str) -> bool {
    let (a, b) = (confusable_keys(a), confusable_keys(b));
    a.iter().any(|k| b.contains(k))
}

fn confusable_keys(raw: &str) -> [String; 2] {
    let skeleton = |s: &str| unicode_security::skeleton(s).collect::<String>();
    let nfkc: String = raw.trim().nfkc().collect();
    [
        skeleton(&nfkc).to_lowercase(),
        skeleton(&nfkc.to_lowercase()),
    ]
}

/// Characters that show nothing: format characters (Unicode category Cf, the
/// bidirectional controls among them) and variation selectors. A name holding one
/// can look like another name, or reorder the text around it on a page.
pub fn is_invisible(c: char) -> bool {
    matches!(u32::from(c),
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890 | 0x0891 | 0x08E2
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164
        | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
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
        if let Some(bad) = name.chars().find(|&c| c.is_control() || is_invisible(c)) {
            return Err(InvalidInput(format!(
                "team name contains the invisible or control character U+{:04X}: use visible characters",
                u32::from(bad)
            )));
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
    fn team_names_refuse_invisible_and_bidi_characters() {
        for bad in [
            "ab\u{200B}cd",
            "\u{202E}evil",
            "te\u{2066}am",
            "x\u{FEFF}y",
            "a\u{00AD}b",
        ] {
            let err = TeamName::parse(bad).unwrap_err().0;
            assert!(
                err.contains("invisible or control character U+"),
                "{bad:?}: {err}"
            );
        }
        assert!(TeamName::parse("les Bleus 🦀").is_ok());
    }

    #[test]
    fn lookalike_names_are_detected() {
        // Latin "paypal" and one with a Cyrillic "а" (U+0430)
        assert!(looks_alike("paypal", "p\u{0430}ypal"));
        assert!(looks_alike("admin", "ADMIN"));
        assert!(looks_alike("ADMIN", "adrnin"));
        assert!(looks_alike("Blue", "B\u{0406}ue"));
        assert!(looks_alike("Blue", "blu\u{0435}"));
        assert!(looks_alike("modern", "rnodern"));
        assert!(!looks_alike("alice", "alicia"));
        assert!(!looks_alike("Red Team", "Blue Team"));
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
