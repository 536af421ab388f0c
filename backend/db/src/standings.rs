//! Standings maintained inside the transactions that change them.
//!
//! Two tables hold what the boards read (`migrations/*/0010_standings.sql`):
//! `submission_scores`, each submission's sum of shares per split, and
//! `track_standings`, each team's counted submission per challenge, track and
//! split. A new cell adds its share to its two parties' rows (in cell order, so
//! the sums are the very floats `leaderboard::submission_scores` computes); every
//! change to a submission's score, status, choice or team then re-picks that
//! team's counted submission with `leaderboard::team_standing`. The rules stay in
//! core; this module only keeps their results current.
//!
//! Every writer calls [`bump`] first: it raises `board_state.version` (cached
//! boards compare against it) and takes the one lock that serializes standing
//! updates, so cells are summed in id order on PostgreSQL as on SQLite.

use std::collections::{BTreeSet, HashMap};

use riposte_core::challenge::{ChallengeSpec, RankBy};
use riposte_core::examples::ExampleBits;
use riposte_core::leaderboard::{self, Fooled, Standing};
use riposte_core::store::{
    ChallengeId, Evaluation, Party, Split, StoreError, StoreResult, SubmissionId, TeamId, Track,
};
use sqlx::{AnyConnection, Row};

use crate::sql::backend_err;

const SPLITS: [Split; 2] = [Split::Public, Split::Private];

/// Raise the board version; the first statement of every transaction that
/// changes a board.
pub(crate) async fn bump(conn: &mut AnyConnection) -> StoreResult<()> {
    sqlx::query("UPDATE board_state SET version = version + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    Ok(())
}

pub(crate) async fn version(conn: &mut AnyConnection) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT version FROM board_state WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend_err)
}

/// A cell that was just stored adds its share to its parties' scores. The
/// submissions whose score moved are added to `touched`.
pub(crate) async fn add_cell(
    conn: &mut AnyConnection,
    cell: &Evaluation,
    touched: &mut BTreeSet<SubmissionId>,
) -> StoreResult<()> {
    if cell.total <= 0 {
        return Ok(());
    }
    let total = cell.total as f64;
    let shares = [
        (&cell.attacker, cell.fooled as f64 / total),
        (&cell.defender, (cell.total - cell.fooled) as f64 / total),
    ];
    for (party, share) in shares {
        let Party::Submission(id) = party else {
            continue;
        };
        add_share(conn, *id, cell.split, share).await?;
        touched.insert(*id);
    }
    if let Party::Submission(id) = cell.defender {
        add_examples(conn, id, cell).await?;
    }
    Ok(())
}

/// Join a cell's per-example results to its defender's union on the cell's
/// split (the row exists: [`add_share`] made it).
async fn add_examples(
    conn: &mut AnyConnection,
    id: SubmissionId,
    cell: &Evaluation,
) -> StoreResult<()> {
    let row = sqlx::query(
        "SELECT fooled_union, union_total, incomplete FROM submission_scores \
         WHERE submission_id = $1 AND split = $2",
    )
    .bind(id)
    .bind(cell.split.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(backend_err)?;
    let mut fooled = fooled_from(&row)?;
    fooled.add(cell);
    sqlx::query(
        "UPDATE submission_scores SET fooled_union = $3, union_total = $4, incomplete = $5 \
         WHERE submission_id = $1 AND split = $2",
    )
    .bind(id)
    .bind(cell.split.as_str())
    .bind(
        fooled
            .union
            .as_ref()
            .map(ExampleBits::to_hex)
            .unwrap_or_default(),
    )
    .bind(i64::try_from(fooled.total).unwrap_or(i64::MAX))
    .bind(i64::from(fooled.incomplete))
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}

/// A `submission_scores` row's [`Fooled`].
fn fooled_from(row: &sqlx::any::AnyRow) -> StoreResult<Fooled> {
    let hex: Option<String> = row.try_get("fooled_union").map_err(backend_err)?;
    let total: Option<i64> = row.try_get("union_total").map_err(backend_err)?;
    let incomplete: Option<i64> = row.try_get("incomplete").map_err(backend_err)?;
    let total = usize::try_from(total.unwrap_or(0)).unwrap_or(0);
    let union = match hex.as_deref() {
        None | Some("") if total == 0 => None,
        raw => Some(
            ExampleBits::from_hex(raw.unwrap_or(""), total)
                .map_err(|e| StoreError::Backend(anyhow::anyhow!("stored fooled_union: {e}")))?,
        ),
    };
    Ok(Fooled {
        total,
        union,
        incomplete: incomplete.unwrap_or(0) != 0,
    })
}

/// Add one cell's share to one submission's score on `split`.
async fn add_share(
    conn: &mut AnyConnection,
    id: SubmissionId,
    split: Split,
    share: f64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO submission_scores (submission_id, split, score, opponents) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (submission_id, split) DO UPDATE \
         SET score = submission_scores.score + excluded.score, opponents = submission_scores.opponents + 1",
    )
    .bind(id)
    .bind(split.as_str())
    .bind(share)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}

/// Take submission `id` out of the matrix of `challenge`: delete every cell it
/// is a party to and its scores, then sum each submission it faced again from
/// its remaining cells, in cell order (the very floats a rebuild makes). The
/// submission and the ones it faced are added to `touched`.
pub(crate) async fn remove_party(
    conn: &mut AnyConnection,
    challenge: ChallengeId,
    id: SubmissionId,
    touched: &mut BTreeSet<SubmissionId>,
) -> StoreResult<()> {
    let key = Party::Submission(id).key();
    let rows = sqlx::query(
        "SELECT attacker, defender FROM evaluations \
         WHERE challenge_id = $1 AND (attacker = $2 OR defender = $2)",
    )
    .bind(challenge)
    .bind(key.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_err)?;
    let mut faced = BTreeSet::new();
    for row in &rows {
        for column in ["attacker", "defender"] {
            let raw: String = row.try_get(column).map_err(backend_err)?;
            if let Some(Party::Submission(other)) = Party::parse(&raw)
                && other != id
            {
                faced.insert(other);
            }
        }
    }
    sqlx::query(
        "DELETE FROM evaluations WHERE challenge_id = $1 AND (attacker = $2 OR defender = $2)",
    )
    .bind(challenge)
    .bind(key.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    sqlx::query("DELETE FROM submission_scores WHERE submission_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    for &other in &faced {
        resum(conn, challenge, other).await?;
    }
    touched.insert(id);
    touched.extend(faced);
    Ok(())
}

/// Sum submission `id`'s scores again from its cells, in cell order.
async fn resum(
    conn: &mut AnyConnection,
    challenge: ChallengeId,
    id: SubmissionId,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM submission_scores WHERE submission_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    let key = Party::Submission(id).key();
    let cells = sqlx::query(
        "SELECT attacker, defender, split, total, fooled, created_at, examples FROM evaluations \
         WHERE challenge_id = $1 AND (attacker = $2 OR defender = $2) AND total > 0 ORDER BY id",
    )
    .bind(challenge)
    .bind(key.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_err)?;
    for row in &cells {
        let cell = crate::sql::evaluation_from(row)?;
        let attacker = cell.attacker == Party::Submission(id);
        let hits = if attacker {
            cell.fooled
        } else {
            cell.total - cell.fooled
        };
        add_share(conn, id, cell.split, hits as f64 / cell.total as f64).await?;
        if !attacker {
            add_examples(conn, id, &cell).await?;
        }
    }
    Ok(())
}

/// Re-pick the counted submission of every (challenge, track, team) one of
/// `submissions` belongs to.
pub(crate) async fn refresh_submissions(
    conn: &mut AnyConnection,
    submissions: &BTreeSet<SubmissionId>,
) -> StoreResult<()> {
    let ids: Vec<SubmissionId> = submissions.iter().copied().collect();
    let mut groups: BTreeSet<(ChallengeId, String, TeamId)> = BTreeSet::new();
    let mut rules: HashMap<ChallengeId, RankBy> = HashMap::new();
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|k| format!("${k}")).collect();
        let sql = format!(
            "SELECT DISTINCT challenge_id, track, team_id FROM submissions WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(backend_err)? {
            groups.insert((
                row.try_get("challenge_id").map_err(backend_err)?,
                row.try_get("track").map_err(backend_err)?,
                row.try_get("team_id").map_err(backend_err)?,
            ));
        }
    }
    for (challenge, track, team) in groups {
        let rule = match rules.get(&challenge) {
            Some(&rule) => rule,
            None => {
                let rule = rank_rule(conn, challenge).await?;
                rules.insert(challenge, rule);
                rule
            }
        };
        refresh_group_by(conn, challenge, track_of(&track)?, team, rule).await?;
    }
    Ok(())
}

/// The rule that ranks `challenge`'s defense board (its spec's `rank_by`; sum
/// for a challenge without a defense track).
async fn rank_rule(conn: &mut AnyConnection, challenge: ChallengeId) -> StoreResult<RankBy> {
    let spec: Option<String> = sqlx::query_scalar("SELECT spec FROM challenges WHERE id = $1")
        .bind(challenge)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend_err)?;
    let Some(spec) = spec else {
        return Ok(RankBy::Sum);
    };
    let spec: ChallengeSpec = serde_json::from_str(&spec).map_err(|e| {
        StoreError::Backend(anyhow::anyhow!("stored spec of challenge {challenge}: {e}"))
    })?;
    Ok(spec.defense.map_or(RankBy::Sum, |d| d.rank_by))
}

/// Re-pick every counted submission of `team` (after its submissions changed
/// hands), and drop the standings of `gone` (a team merged into it).
pub(crate) async fn refresh_team(
    conn: &mut AnyConnection,
    team: TeamId,
    gone: Option<TeamId>,
) -> StoreResult<()> {
    if let Some(gone) = gone {
        sqlx::query("DELETE FROM track_standings WHERE team_id = $1")
            .bind(gone)
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    let rows =
        sqlx::query("SELECT DISTINCT challenge_id, track FROM submissions WHERE team_id = $1")
            .bind(team)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend_err)?;
    for row in rows {
        let challenge: ChallengeId = row.try_get("challenge_id").map_err(backend_err)?;
        let track: String = row.try_get("track").map_err(backend_err)?;
        refresh_group(conn, challenge, track_of(&track)?, team).await?;
    }
    Ok(())
}

/// Re-pick one team's counted submission on one track, on both splits.
pub(crate) async fn refresh_group(
    conn: &mut AnyConnection,
    challenge: ChallengeId,
    track: Track,
    team: TeamId,
) -> StoreResult<()> {
    let rule = rank_rule(conn, challenge).await?;
    refresh_group_by(conn, challenge, track, team, rule).await
}

/// [`refresh_group`] with the challenge's rule known.
async fn refresh_group_by(
    conn: &mut AnyConnection,
    challenge: ChallengeId,
    track: Track,
    team: TeamId,
    rule: RankBy,
) -> StoreResult<()> {
    let rows = sqlx::query(
        "SELECT s.id, s.chosen, s.queries_used, s.created_at, p.split, p.score, p.opponents, \
         p.fooled_union, p.union_total, p.incomplete \
         FROM submissions s LEFT JOIN submission_scores p ON p.submission_id = s.id \
         WHERE s.team_id = $1 AND s.challenge_id = $2 AND s.track = $3 AND s.status = 'scored'",
    )
    .bind(team)
    .bind(challenge)
    .bind(track.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_err)?;
    // submission -> (chosen, queries, created, per split (sum, opponents, worst case))
    type Candidate = (bool, Option<i64>, i64, [(f64, usize, Option<f64>); 2]);
    let mut candidates: HashMap<SubmissionId, Candidate> = HashMap::new();
    for row in &rows {
        let id: SubmissionId = row.try_get("id").map_err(backend_err)?;
        let entry = match candidates.get_mut(&id) {
            Some(entry) => entry,
            None => candidates.entry(id).or_insert((
                row.try_get::<i64, _>("chosen").map_err(backend_err)? != 0,
                row.try_get("queries_used").map_err(backend_err)?,
                row.try_get("created_at").map_err(backend_err)?,
                [(0.0, 0, None); 2],
            )),
        };
        let split: Option<String> = row.try_get("split").map_err(backend_err)?;
        let Some(split) = split else { continue };
        let slot = usize::from(split == Split::Private.as_str());
        let score: f64 = row.try_get("score").map_err(backend_err)?;
        let opponents: i64 = row.try_get("opponents").map_err(backend_err)?;
        let worst_case = fooled_from(row)?.worst_case();
        entry.3[slot] = (score, usize::try_from(opponents).unwrap_or(0), worst_case);
    }
    for (slot, split) in SPLITS.iter().enumerate() {
        let counted = leaderboard::team_standing(candidates.iter().map(
            |(&id, &(chosen, queries_used, created_at, scores))| {
                (
                    Standing {
                        team_id: team,
                        submission_id: id,
                        score: leaderboard::ranked_score(
                            track,
                            rule,
                            scores[slot].0,
                            scores[slot].2,
                        ),
                        opponents: scores[slot].1,
                        sum: scores[slot].0,
                        worst_case: scores[slot].2,
                        queries_used,
                        reached_at: created_at,
                    },
                    chosen,
                )
            },
        ));
        write_standing(conn, challenge, track, *split, team, counted.as_ref()).await?;
    }
    Ok(())
}

async fn write_standing(
    conn: &mut AnyConnection,
    challenge: ChallengeId,
    track: Track,
    split: Split,
    team: TeamId,
    standing: Option<&Standing>,
) -> StoreResult<()> {
    let Some(s) = standing else {
        sqlx::query(
            "DELETE FROM track_standings WHERE challenge_id = $1 AND track = $2 AND split = $3 AND team_id = $4",
        )
        .bind(challenge)
        .bind(track.as_str())
        .bind(split.as_str())
        .bind(team)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO track_standings \
         (challenge_id, track, split, team_id, submission_id, score, opponents, queries_used, reached_at, \
          sum_score, worst_case, worst_case_known) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (challenge_id, track, split, team_id) DO UPDATE SET \
         submission_id = excluded.submission_id, score = excluded.score, opponents = excluded.opponents, \
         queries_used = excluded.queries_used, reached_at = excluded.reached_at, \
         sum_score = excluded.sum_score, worst_case = excluded.worst_case, \
         worst_case_known = excluded.worst_case_known",
    )
    .bind(challenge)
    .bind(track.as_str())
    .bind(split.as_str())
    .bind(team)
    .bind(s.submission_id)
    .bind(s.score)
    .bind(i64::try_from(s.opponents).unwrap_or(i64::MAX))
    .bind(s.queries_used)
    .bind(s.reached_at)
    .bind(s.sum)
    .bind(s.worst_case.unwrap_or(0.0))
    .bind(i64::from(s.worst_case.is_some()))
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}

/// One track's standings in board order.
pub(crate) async fn read(
    conn: &mut AnyConnection,
    challenge: ChallengeId,
    track: Track,
    split: Split,
) -> StoreResult<Vec<Standing>> {
    let rows = sqlx::query(
        "SELECT team_id, submission_id, score, opponents, queries_used, reached_at, \
         sum_score, worst_case, worst_case_known FROM track_standings \
         WHERE challenge_id = $1 AND track = $2 AND split = $3",
    )
    .bind(challenge)
    .bind(track.as_str())
    .bind(split.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_err)?;
    let mut standings = rows
        .iter()
        .map(|row| {
            Ok(Standing {
                team_id: row.try_get("team_id").map_err(backend_err)?,
                submission_id: row.try_get("submission_id").map_err(backend_err)?,
                score: row.try_get("score").map_err(backend_err)?,
                opponents: usize::try_from(
                    row.try_get::<i64, _>("opponents").map_err(backend_err)?,
                )
                .unwrap_or(0),
                sum: row.try_get("sum_score").map_err(backend_err)?,
                worst_case: (row
                    .try_get::<i64, _>("worst_case_known")
                    .map_err(backend_err)?
                    != 0)
                    .then(|| row.try_get("worst_case"))
                    .transpose()
                    .map_err(backend_err)?,
                queries_used: row.try_get("queries_used").map_err(backend_err)?,
                reached_at: row.try_get("reached_at").map_err(backend_err)?,
            })
        })
        .collect::<StoreResult<Vec<Standing>>>()?;
    leaderboard::order(&mut standings);
    Ok(standings)
}

/// Recompute both tables from the submissions and every cell, in cell order.
/// Skipped when `only_if_unbuilt` and another process built them already.
pub(crate) async fn rebuild(conn: &mut AnyConnection, only_if_unbuilt: bool) -> StoreResult<()> {
    bump(conn).await?;
    let built: i64 = sqlx::query_scalar("SELECT built FROM board_state WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend_err)?;
    if only_if_unbuilt && built != 0 {
        return Ok(());
    }
    for table in [
        "DELETE FROM submission_scores",
        "DELETE FROM track_standings",
    ] {
        sqlx::query(table)
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    let cells = sqlx::query(
        "SELECT attacker, defender, split, total, fooled, created_at, examples FROM evaluations ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(backend_err)?;
    let mut touched = BTreeSet::new();
    for row in &cells {
        let cell = crate::sql::evaluation_from(row)?;
        add_cell(conn, &cell, &mut touched).await?;
    }
    let scored: Vec<SubmissionId> =
        sqlx::query_scalar("SELECT id FROM submissions WHERE status = 'scored'")
            .fetch_all(&mut *conn)
            .await
            .map_err(backend_err)?;
    refresh_submissions(conn, &scored.into_iter().collect()).await?;
    sqlx::query("UPDATE board_state SET built = 1 WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    Ok(())
}

fn track_of(raw: &str) -> StoreResult<Track> {
    Track::parse(raw)
        .ok_or_else(|| StoreError::Backend(anyhow::anyhow!("stored track {raw:?} is unknown")))
}
