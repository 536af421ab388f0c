//! Fixtures for tests of this crate and of the crates that draw its results (the
//! web crate's matrix uses [`example_boards`]): small, hand-checked values, not
//! used by the platform itself.

use std::sync::Arc;

use crate::details::SubmissionDetails;
use crate::history::TrackBoard;
use crate::store::{Evaluation, Party, Split, Submission, SubmissionStatus, TeamId, Track};

/// A scored submission of `team` on `track`, scored at `at`.
pub fn submission(id: i64, team: TeamId, track: Track, at: i64) -> Submission {
    Submission {
        id,
        challenge_id: 1,
        team_id: team,
        user_id: team,
        track,
        blob_sha256: String::new(),
        filename: String::new(),
        size: 0,
        status: SubmissionStatus::Scored,
        message: String::new(),
        gate_accuracy: None,
        created_at: at,
        finished_at: Some(at),
        details: SubmissionDetails::None,
        chosen: false,
        queries_used: None,
    }
}

/// A matrix cell created at `at`.
pub fn cell(
    attacker: Party,
    defender: Party,
    split: Split,
    total: i64,
    fooled: i64,
    at: i64,
) -> Evaluation {
    Evaluation {
        attacker,
        defender,
        split,
        total,
        fooled,
        created_at: at,
        examples: None,
    }
}

/// A matrix cell with per-example results: `fooled` lists the split's fooled
/// examples out of `total`.
pub fn cell_with_examples(
    attacker: Party,
    defender: Party,
    split: Split,
    total: usize,
    fooled: &[usize],
    at: i64,
) -> Evaluation {
    let bits = crate::examples::ExampleBits::from_bools((0..total).map(|i| fooled.contains(&i)));
    Evaluation {
        attacker,
        defender,
        split,
        total: i64::try_from(total).unwrap_or(i64::MAX),
        fooled: i64::try_from(bits.count()).unwrap_or(i64::MAX),
        created_at: at,
        examples: Some(bits),
    }
}

/// One challenge's two tracks: team 1 attacks (#1 at t=10, #3 at t=30); team 2
/// defends (#4 at t=5) and attacks (#2 at t=20). `history`'s tests compute its
/// steps by hand.
pub fn example_boards() -> Vec<TrackBoard> {
    use Party::{Organizer as Org, Reference, Submission as S};
    let org = |n: &str| Org(n.to_owned());
    let pb = Split::Public;
    let cells: Arc<[Evaluation]> = vec![
        cell(Reference("square".into()), S(4), pb, 20, 15, 6),
        cell(S(1), org("mlp"), pb, 10, 5, 12),
        cell(S(1), org("cnn"), pb, 10, 2, 12),
        cell(S(1), S(4), pb, 10, 4, 12),
        cell(S(1), org("mlp"), Split::Private, 20, 20, 12),
        cell(S(1), org("rnn"), pb, 0, 0, 12),
        cell(S(2), org("mlp"), pb, 10, 10, 25),
        cell(S(2), S(4), pb, 10, 10, 25),
        cell(S(3), org("mlp"), pb, 10, 9, 31),
        cell(S(3), org("cnn"), pb, 10, 4, 31),
        cell(S(3), S(4), pb, 10, 3, 31),
    ]
    .into();
    vec![
        TrackBoard {
            challenge: "c".into(),
            track: Track::Attack,
            points: 100,
            split: pb,
            rule: crate::challenge::RankBy::Sum,
            scored: vec![
                submission(1, 1, Track::Attack, 10),
                submission(2, 2, Track::Attack, 20),
                submission(3, 1, Track::Attack, 30),
            ],
            cells: cells.clone(),
        },
        TrackBoard {
            challenge: "c".into(),
            track: Track::Defense,
            points: 100,
            split: pb,
            rule: crate::challenge::RankBy::Sum,
            scored: vec![submission(4, 2, Track::Defense, 5)],
            cells,
        },
    ]
}
