//! Who sees what, in one place: which challenges a visitor may see, which split
//! of a track's results everybody sees now, and which one a matrix shows. Every
//! page, API route and board asks these (issue 11: the visibility rules are one
//! module). A frozen scoreboard will be decided here too.

use crate::challenge::ChallengeSpec;
use crate::store::{ChallengeRecord, Split, Track, User};

/// Hidden challenges are seen by organizers and admins only.
pub fn may_see(record: &ChallengeRecord, user: Option<&User>) -> bool {
    !record.hidden || user.is_some_and(|u| u.role.can_organize())
}

/// The split participants may see now: private results only once the track has
/// closed or an organizer revealed them.
pub fn shown_split(
    record: &ChallengeRecord,
    spec: &ChallengeSpec,
    track: Track,
    now: i64,
) -> Split {
    let closes = match track {
        Track::Attack => spec.attack.as_ref().map(|t| t.closes),
        Track::Defense => spec.defense.as_ref().map(|d| d.window.closes),
    };
    if record.revealed || closes.is_some_and(|c| now >= c) {
        Split::Private
    } else {
        Split::Public
    }
}

/// Whether a challenge's write-ups (the organizers' solution and the teams'
/// own) are published: once an organizer revealed its results, once every
/// track it has closed, or, for a challenge without tracks, once the event
/// ended. Until then a team sees only its own.
pub fn writeups_published(
    record: &ChallengeRecord,
    spec: &ChallengeSpec,
    timeline: &crate::event::Timeline,
    now: i64,
) -> bool {
    let closes = [
        spec.attack.as_ref().map(|t| t.closes),
        spec.defense.as_ref().map(|d| d.window.closes),
    ];
    let tracks: Vec<i64> = closes.into_iter().flatten().collect();
    record.revealed
        || (!tracks.is_empty() && tracks.iter().all(|&c| now >= c))
        || (tracks.is_empty() && timeline.ends_at.is_some_and(|e| now >= e))
}

/// The tracks a challenge has, attack first.
pub fn tracks_of(spec: &ChallengeSpec) -> Vec<Track> {
    let mut tracks = Vec::new();
    if spec.attack.is_some() {
        tracks.push(Track::Attack);
    }
    if spec.defense.is_some() {
        tracks.push(Track::Defense);
    }
    tracks
}

/// The split the matrix shows. A cell speaks for an attack and a defense at once,
/// so it turns private only once every track of the challenge shows its private
/// split (closed, or revealed by an organizer).
pub fn matrix_split(record: &ChallengeRecord, spec: &ChallengeSpec, now: i64) -> Split {
    let tracks = tracks_of(spec);
    let all_private = tracks
        .iter()
        .all(|&t| shown_split(record, spec, t, now) == Split::Private);
    if !tracks.is_empty() && all_private {
        Split::Private
    } else {
        Split::Public
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::account::Role;
    use crate::challenge::ChallengeKind;

    #[test]
    fn matrix_split_turns_private_when_every_track_shows_private() {
        let mut spec: ChallengeSpec = serde_json::from_value(serde_json::json!({
            "slug": "c", "title": "C", "kind": "evasion", "difficulty": "easy", "tags": [], "points": 1,
            "summary": "", "task": null, "threat": {"norm": null, "epsilon": null, "targeted": false},
            "targets": [], "eval": null, "attack": {"opens": 0, "closes": 10, "submissions_per_day": 1, "max_upload_bytes": 1},
            "defense": {"window": {"opens": 0, "closes": 20, "submissions_per_day": 1, "max_upload_bytes": 1},
                "gate_clean_accuracy": 0.5, "hidden_inputs": "a", "hidden_labels": "b", "reference_attacks": []}
        }))
        .unwrap();
        let mut record = ChallengeRecord {
            id: 1,
            slug: "c".into(),
            title: "C".into(),
            kind: ChallengeKind::Evasion,
            difficulty: crate::challenge::Difficulty::Easy,
            tags: vec![],
            points: 1,
            summary: String::new(),
            readme: String::new(),
            spec: ChallengeSpec::bare("c", ChallengeKind::Evasion),
            files: vec![],
            hidden: false,
            revealed: false,
            updated_at: 0,
        };
        assert_eq!(matrix_split(&record, &spec, 15), Split::Public);
        assert_eq!(
            shown_split(&record, &spec, Track::Attack, 15),
            Split::Private
        );
        assert_eq!(matrix_split(&record, &spec, 20), Split::Private);
        record.revealed = true;
        assert_eq!(matrix_split(&record, &spec, 0), Split::Private);
        record.revealed = false;
        spec.defense = None;
        assert_eq!(matrix_split(&record, &spec, 10), Split::Private);
    }

    #[test]
    fn hidden_challenges_are_for_organizers_only() {
        let record = |hidden| ChallengeRecord {
            id: 1,
            slug: "c".into(),
            title: "C".into(),
            kind: ChallengeKind::Evasion,
            difficulty: crate::challenge::Difficulty::Easy,
            tags: vec![],
            points: 1,
            summary: String::new(),
            readme: String::new(),
            spec: ChallengeSpec::bare("c", ChallengeKind::Evasion),
            files: vec![],
            hidden,
            revealed: false,
            updated_at: 0,
        };
        let user = |role| User {
            id: 1,
            username: "u".into(),
            role,
            banned: false,
            hidden: false,
            team_id: None,
            created_at: 0,
        };
        assert!(may_see(&record(false), None));
        assert!(!may_see(&record(true), None));
        assert!(!may_see(&record(true), Some(&user(Role::Competitor))));
        assert!(may_see(&record(true), Some(&user(Role::Organizer))));
        assert!(may_see(&record(true), Some(&user(Role::Admin))));
    }
}
