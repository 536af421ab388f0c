//! What an upload must pass before it is queued: an event that is running (for
//! competitors), a track the challenge has and that is open now, a non-empty file within the track's size limit, the team's
//! daily limit, and (defenses) bytes no live defense of the challenge already
//! has. Every refusal is decided before the bytes are moved into the blob store,
//! so nothing is stored for a refused upload; the submission row and its job are
//! then written in one transaction that counts the daily limit again under a lock.

use riposte_core::challenge::{ChallengeSpec, Track as Window};
use riposte_core::store::{ChallengeRecord, NewSubmission, Store, StoreError, Submission, Track};

use crate::blobs::{BlobStore, BlobWriter};
use crate::view;

/// A day, in seconds: the window the daily limit counts over.
const DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum UploadRefused {
    #[error("challenge {0:?} takes no uploads: it has no attack or defense track")]
    NoUploads(String),
    #[error("track {0:?} is unknown: expected attack or defense")]
    UnknownTrack(String),
    #[error("this challenge has no {} track", .0.as_str())]
    NoTrack(Track),
    #[error("the {} track accepts submissions from {} to {} (UTC); it is {} now",
        .track.as_str(), view::datetime(.window.opens), view::datetime(.window.closes), view::datetime(*.now))]
    Closed {
        track: Track,
        window: Window,
        now: i64,
    },
    /// Outside the event's start and end (`riposte_core::event`).
    #[error("{0}")]
    EventClosed(#[from] riposte_core::event::Closed),
    #[error("the upload has no file field named \"file\"")]
    NoFile,
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes: the {} track accepts at most {}", .track.as_str(), mib(*.limit))]
    TooLarge { size: u64, track: Track, limit: u64 },
    #[error("your team has used its {limit} {} submissions of the last 24 hours", .track.as_str())]
    DailyLimit { limit: i64, track: Track },
    #[error(
        "this model is byte-identical (sha256 {sha256}) to {whose}, already entered in this challenge: each defense must be a different model"
    )]
    Duplicate { sha256: String, whose: String },
    #[error(
        "your team changed while the file was uploading (you joined or left a team): upload it again"
    )]
    TeamChanged,
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for UploadRefused {
    fn from(e: StoreError) -> Self {
        UploadRefused::Internal(e.into())
    }
}

/// `bytes` in whole MiB, as limits are stated.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// The largest file any track of the challenge accepts; a challenge without
/// tracks (a flag challenge) takes no uploads at all.
pub fn largest_upload(spec: &ChallengeSpec) -> Result<u64, UploadRefused> {
    let attack = spec.attack.as_ref().map(|t| t.max_upload_bytes);
    let defense = spec.defense.as_ref().map(|d| d.window.max_upload_bytes);
    attack
        .max(defense)
        .ok_or_else(|| UploadRefused::NoUploads(spec.slug.clone()))
}

/// An upload as read from the request: the track asked for and the file, if any
/// (its display name and its bytes, streamed into a temporary blob).
pub struct Upload {
    pub track: String,
    pub file: Option<(String, BlobWriter)>,
}

/// Who uploads, where, and when.
pub struct Uploader<'a> {
    pub store: &'a dyn Store,
    pub blobs: &'a BlobStore,
    pub user: &'a riposte_core::store::User,
    pub now: i64,
    /// The event's start and end (staff upload at any time).
    pub timeline: riposte_core::event::Timeline,
}

/// Check an upload against the track's rules and queue it. Nothing is stored on refusal.
pub async fn accept(
    who: &Uploader<'_>,
    record: &ChallengeRecord,
    upload: Upload,
) -> Result<Submission, UploadRefused> {
    let spec = &record.spec;
    let track = Track::parse(&upload.track)
        .ok_or_else(|| UploadRefused::UnknownTrack(upload.track.clone()))?;
    who.timeline.gate_for(who.user, who.now)?;
    let window = open_window(spec, track, who.now)?;
    let (filename, writer) = upload.file.ok_or(UploadRefused::NoFile)?;
    if writer.size() == 0 {
        return Err(UploadRefused::Empty);
    }
    if writer.size() > window.max_upload_bytes {
        return Err(UploadRefused::TooLarge {
            size: writer.size(),
            track,
            limit: window.max_upload_bytes,
        });
    }
    let team_id = super::teams::ensure_team(who.store, who.user, who.now).await?;
    // Every refusal is decided before the bytes are stored: a team over its
    // limit cannot fill the disk. (Two uploads racing for the last slot can both
    // get here; the loser's blob is left to the sweep.)
    let limit = i64::from(window.submissions_per_day);
    let used = who
        .store
        .count_submissions_since(team_id, record.id, track, who.now - DAY)
        .await?;
    if used >= limit {
        return Err(UploadRefused::DailyLimit { limit, track });
    }
    if track == Track::Defense {
        refuse_duplicate_defense(who.store, record.id, team_id, &writer.sha256()).await?;
    }
    let (sha, size) = who
        .blobs
        .finish(writer)
        .await
        .map_err(UploadRefused::Internal)?;
    let filename = if filename.is_empty() {
        spec.kind.rules().default_file(track).to_owned()
    } else {
        filename
    };
    let created = who
        .store
        .create_submission(NewSubmission {
            challenge_id: record.id,
            team_id,
            user_id: who.user.id,
            track,
            blob_sha256: &sha,
            filename: &filename,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            now: who.now,
            limit,
            limit_since: who.now - DAY,
        })
        .await;
    match created {
        Ok(s) => {
            tracing::info!(
                submission = s.id,
                team = team_id,
                track = track.as_str(),
                "queued"
            );
            Ok(s)
        }
        Err(StoreError::Refused(_)) => Err(UploadRefused::DailyLimit { limit, track }),
        Err(StoreError::NotFound) => Err(UploadRefused::TeamChanged),
        Err(e) => Err(e.into()),
    }
}

/// The window of `track`, if the challenge has the track and it is open at `now`.
fn open_window(spec: &ChallengeSpec, track: Track, now: i64) -> Result<&Window, UploadRefused> {
    let window = match track {
        Track::Attack => spec.attack.as_ref(),
        Track::Defense => spec.defense.as_ref().map(|d| &d.window),
    }
    .ok_or(UploadRefused::NoTrack(track))?;
    if !window.is_open_at(now) {
        return Err(UploadRefused::Closed {
            track,
            window: window.clone(),
            now,
        });
    }
    Ok(window)
}

/// A defense whose bytes are already a queued, running or accepted defense of the
/// challenge would count the same model twice in the matrix: refused. The message
/// names the earlier submission only when it is the team's own.
async fn refuse_duplicate_defense(
    store: &dyn Store,
    challenge: i64,
    team_id: i64,
    sha256: &str,
) -> Result<(), UploadRefused> {
    let Some(earlier) = store.live_defense_with_sha256(challenge, sha256).await? else {
        return Ok(());
    };
    let whose = if earlier.team_id == team_id {
        format!("your team's submission #{}", earlier.id)
    } else {
        "another team's defense".to_owned()
    };
    Err(UploadRefused::Duplicate {
        sha256: sha256.to_owned(),
        whose,
    })
}
