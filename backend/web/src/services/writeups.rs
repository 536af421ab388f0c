//! Write-ups: the organizers' solution (`solution/README.md` in the bundle)
//! and each team's own, published together once the challenge's results are
//! (`core::visibility::writeups_published`: revealed, every track closed, or a
//! trackless challenge's event over). Until then a team sees only its own.

use riposte_core::event::Timeline;
use riposte_core::store::{ChallengeRecord, Store, StoreError, TeamId, User, Writeup};

/// The longest write-up, in characters.
pub const MAX_CHARS: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum WriteupError {
    #[error("join or create a team first (see /team)")]
    NoTeam,
    #[error("a write-up is 1 to {MAX_CHARS} characters of markdown (this one has {0})")]
    BadLength(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a viewer may read of a challenge's write-ups.
pub struct Shown {
    pub published: bool,
    /// The organizers' solution, once published.
    pub solution: Option<String>,
    /// Published: every counted team's write-up (and the viewer's own);
    /// before: the viewer's team's only. (team id, team name, write-up).
    pub writeups: Vec<(TeamId, String, Writeup)>,
    /// The viewer's team's own write-up, to edit.
    pub own: Option<Writeup>,
}

/// The write-ups of `record` as `user` may read them at `now`.
pub async fn shown(
    store: &dyn Store,
    user: Option<&User>,
    record: &ChallengeRecord,
    (timeline, now): (&Timeline, i64),
) -> Result<Shown, StoreError> {
    let published =
        riposte_core::visibility::writeups_published(record, &record.spec, timeline, now);
    let team = user.and_then(|u| u.team_id);
    let all = store.writeups(record.id).await?;
    let own = all.iter().find(|w| Some(w.team_id) == team).cloned();
    let mut writeups = Vec::new();
    if published {
        let counted: std::collections::HashSet<TeamId> =
            store.counted_teams().await?.into_iter().collect();
        let names: std::collections::HashMap<TeamId, String> = store
            .list_teams()
            .await?
            .into_iter()
            .map(|t| (t.team.id, t.team.name))
            .collect();
        for w in all {
            if counted.contains(&w.team_id) || Some(w.team_id) == team {
                let name = names.get(&w.team_id).cloned().unwrap_or_default();
                writeups.push((w.team_id, name, w));
            }
        }
    }
    Ok(Shown {
        published,
        solution: if published {
            record.spec.solution.clone()
        } else {
            None
        },
        writeups,
        own,
    })
}

/// Save `user`'s team's write-up of `record`.
pub async fn save(
    store: &dyn Store,
    user: &User,
    record: &ChallengeRecord,
    body: &str,
    now: i64,
) -> Result<Writeup, WriteupError> {
    let team = user.team_id.ok_or(WriteupError::NoTeam)?;
    let body = body.trim().replace("\r\n", "\n");
    let chars = body.chars().count();
    if chars == 0 || chars > MAX_CHARS {
        return Err(WriteupError::BadLength(chars));
    }
    let writeup = Writeup {
        challenge_id: record.id,
        team_id: team,
        user_id: user.id,
        body,
        updated_at: now,
    };
    store.save_writeup(&writeup).await?;
    Ok(writeup)
}
