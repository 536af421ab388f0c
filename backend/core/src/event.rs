//! The event's timeline: when it starts and ends, and when its scoreboard froze.
//!
//! - Outside `[starts_at, ends_at)` competitors' uploads, flag attempts and
//!   black-box queries are refused ([`Timeline::gate`]); staff are never refused,
//!   so they can rehearse before the start. Each track's own window still applies.
//! - From `freeze_at` on, competitors see every board (scoreboard, history,
//!   leaderboards, matrices, solve counts) as it stood at `freeze_at`;
//!   organizers see them live; a team's own submissions keep showing their
//!   results. The freeze lasts until an organizer clears it (unfreezes), as in
//!   CTFd: the end of the event does not lift it.
//!
//! Every time is Unix seconds (UTC); `None` means "not set".

use serde::Serialize;

use crate::store::User;

/// The event's three moments, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub freeze_at: Option<i64>,
}

/// Why the timeline refuses a submission now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    #[error("the event has not started: it starts at {}", rfc3339(*.0))]
    NotStarted(i64),
    #[error("the event has ended: it ended at {}", rfc3339(*.0))]
    Ended(i64),
}

/// A timeline an organizer entered that cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    #[error(
        "{field}: {value:?} is not a date and time: expected RFC 3339 (2026-12-01T18:00:00Z) or 2026-12-01T18:00 (UTC)"
    )]
    Unparsable { field: &'static str, value: String },
    #[error("the event must end after it starts ({} is not after {})", rfc3339(*ends), rfc3339(*starts))]
    EndsBeforeStart { starts: i64, ends: i64 },
}

impl Timeline {
    /// `Err` while competitors may not submit at `now`.
    pub fn gate(&self, now: i64) -> Result<(), Closed> {
        if let Some(starts) = self.starts_at
            && now < starts
        {
            return Err(Closed::NotStarted(starts));
        }
        if let Some(ends) = self.ends_at
            && now >= ends
        {
            return Err(Closed::Ended(ends));
        }
        Ok(())
    }

    /// [`Self::gate`] for `user`: staff always pass.
    pub fn gate_for(&self, user: &User, now: i64) -> Result<(), Closed> {
        if user.role.can_organize() {
            return Ok(());
        }
        self.gate(now)
    }

    /// The moment the boards are frozen at, once `now` has reached it.
    pub fn frozen_at(&self, now: i64) -> Option<i64> {
        self.freeze_at.filter(|&at| now >= at)
    }

    /// The moment `user`'s boards are frozen at: organizers and admins always
    /// see live boards.
    pub fn frozen_for(&self, user: Option<&User>, now: i64) -> Option<i64> {
        if user.is_some_and(|u| u.role.can_organize()) {
            return None;
        }
        self.frozen_at(now)
    }

    /// A timeline from an organizer's form or JSON: each field empty (unset),
    /// RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` in UTC (what `<input
    /// type="datetime-local">` sends).
    pub fn parse(starts: &str, ends: &str, freeze: &str) -> Result<Self, TimelineError> {
        let timeline = Self {
            starts_at: parse_moment("starts_at", starts)?,
            ends_at: parse_moment("ends_at", ends)?,
            freeze_at: parse_moment("freeze_at", freeze)?,
        };
        timeline.check()?;
        Ok(timeline)
    }

    /// The one rule between the moments: an end after the start. A freeze may
    /// be set anywhere (before the start freezes an empty board on purpose).
    pub fn check(&self) -> Result<(), TimelineError> {
        if let (Some(starts), Some(ends)) = (self.starts_at, self.ends_at)
            && ends <= starts
        {
            return Err(TimelineError::EndsBeforeStart { starts, ends });
        }
        Ok(())
    }
}

/// One moment as organizers type it: empty (none), RFC 3339, or
/// `YYYY-MM-DDTHH:MM[:SS]` in UTC. `field` names it in the error.
pub fn parse_moment(field: &'static str, raw: &str) -> Result<Option<i64>, TimelineError> {
    use time::format_description::well_known::Rfc3339;
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let unparsable = || TimelineError::Unparsable {
        field,
        value: raw.chars().take(64).collect(),
    };
    if let Ok(t) = time::OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(Some(t.unix_timestamp()));
    }
    let local = match raw.len() {
        16 => time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        19 => time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        _ => return Err(unparsable()),
    };
    time::PrimitiveDateTime::parse(raw, &local)
        .map(|t| Some(t.assume_utc().unix_timestamp()))
        .map_err(|_| unparsable())
}

/// Unix seconds as RFC 3339 (UTC), for messages.
fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::account::Role;

    fn user(role: Role) -> User {
        User {
            id: 1,
            username: "u".into(),
            role,
            banned: false,
            hidden: false,
            team_id: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_gate_is_open_from_the_start_until_the_end() {
        let t = Timeline {
            starts_at: Some(100),
            ends_at: Some(200),
            freeze_at: None,
        };
        assert_eq!(t.gate(99), Err(Closed::NotStarted(100)));
        assert_eq!(t.gate(100), Ok(()));
        assert_eq!(t.gate(199), Ok(()));
        assert_eq!(t.gate(200), Err(Closed::Ended(200)));
        assert_eq!(t.gate_for(&user(Role::Organizer), 250), Ok(()));
        assert_eq!(
            t.gate_for(&user(Role::Competitor), 250),
            Err(Closed::Ended(200))
        );
        assert_eq!(Timeline::default().gate(i64::MIN), Ok(()));
        assert_eq!(
            Closed::Ended(0).to_string(),
            "the event has ended: it ended at 1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn the_freeze_starts_at_its_moment_and_spares_staff() {
        let t = Timeline {
            freeze_at: Some(150),
            ..Timeline::default()
        };
        assert_eq!(t.frozen_at(149), None);
        assert_eq!(t.frozen_at(150), Some(150));
        assert_eq!(t.frozen_at(10_000), Some(150));
        assert_eq!(t.frozen_for(None, 151), Some(150));
        assert_eq!(t.frozen_for(Some(&user(Role::Competitor)), 151), Some(150));
        assert_eq!(t.frozen_for(Some(&user(Role::Organizer)), 151), None);
        assert_eq!(t.frozen_for(Some(&user(Role::Admin)), 151), None);
        assert_eq!(Timeline::default().frozen_at(i64::MAX), None);
    }

    #[test]
    fn moments_parse_from_rfc3339_and_datetime_local() {
        let t = Timeline::parse("2026-12-01T18:00", "2026-12-02T18:00:30Z", "").unwrap();
        assert_eq!(t.starts_at, Some(1_796_148_000));
        assert_eq!(t.ends_at, Some(1_796_148_000 + 86_400 + 30));
        assert_eq!(t.freeze_at, None);
        let offset = Timeline::parse("2026-12-01T19:00:00+01:00", "", " ").unwrap();
        assert_eq!(offset.starts_at, Some(1_796_148_000));
        let err = Timeline::parse("", "", "tomorrow").unwrap_err();
        assert_eq!(
            err,
            TimelineError::Unparsable {
                field: "freeze_at",
                value: "tomorrow".into()
            }
        );
        assert!(err.to_string().contains("expected RFC 3339"));
        let backwards = Timeline::parse("2026-12-02T00:00", "2026-12-01T00:00", "").unwrap_err();
        assert!(matches!(backwards, TimelineError::EndsBeforeStart { .. }));
        assert!(
            Timeline::parse("2026-12-01T00:00", "2026-12-01T00:00", "")
                .unwrap_err()
                .to_string()
                .contains("must end after it starts")
        );
        // 64 characters of a hostile value are kept, no more
        let long = "x".repeat(10_000);
        match Timeline::parse(&long, "", "").unwrap_err() {
            TimelineError::Unparsable { value, .. } => assert_eq!(value.len(), 64),
            other => panic!("{other:?}"),
        }
    }
}
