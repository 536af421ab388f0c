//! Results for organizers to take away: the scoreboard, a track's leaderboard on
//! either split, a challenge's matrix cells and its submissions, as CSV or JSON.
//!
//! CSV follows RFC 4180 (comma, CRLF, quotes doubled) and is safe to open in a
//! spreadsheet: a text cell that starts like a formula (`=`, `+`, `-`, `@`, tab,
//! carriage return) gets a leading `'`, as OWASP advises, since team names and
//! file names are competitors' text. Numbers are written as numbers.

use std::collections::{HashMap, HashSet};

use riposte_core::leaderboard::{self, EventScore};
use riposte_core::store::{
    ChallengeRecord, Split, Store, StoreError, SubmissionFilter, TeamId, Track,
};

/// One value of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Float(f64),
    Null,
}

/// Rows under named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(csv_cell).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// An array of objects, one per row, keyed by column.
    pub fn json(&self) -> serde_json::Value {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let object: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| ((*c).to_owned(), json_cell(v)))
                    .collect();
                serde_json::Value::Object(object)
            })
            .collect();
        serde_json::Value::Array(rows)
    }
}

fn csv_cell(cell: &Cell) -> String {
    match cell {
        Cell::Text(text) => {
            let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{text}")
            } else {
                text.clone()
            };
            quote(&defused)
        }
        Cell::Int(n) => n.to_string(),
        Cell::Float(x) if x.is_finite() => x.to_string(),
        Cell::Float(_) | Cell::Null => String::new(),
    }
}

fn quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn json_cell(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Text(text) => text.clone().into(),
        Cell::Int(n) => (*n).into(),
        Cell::Float(x) => {
            serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, Into::into)
        }
        Cell::Null => serde_json::Value::Null,
    }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn int(n: impl TryInto<i64>) -> Cell {
    n.try_into().map_or(Cell::Null, Cell::Int)
}

/// The first cells of a ranked row: rank (from 1), team id, team name.
fn ranked(i: usize, team: TeamId, names: &HashMap<TeamId, String>) -> Vec<Cell> {
    vec![
        int(i + 1),
        int(team),
        text(names.get(&team).cloned().unwrap_or_default()),
    ]
}

/// The event scoreboard as the boards rank it now.
pub fn scoreboard(standings: &[EventScore], names: &HashMap<TeamId, String>) -> Table {
    let rows = standings
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = ranked(i, s.team_id, names);
            row.extend([Cell::Float(s.points), int(s.reached_at)]);
            row
        })
        .collect();
    Table {
        columns: vec!["rank", "team_id", "team", "points", "reached_at"],
        rows,
    }
}

/// One track's leaderboard on `split`, counted teams only, in board order.
pub async fn leaderboard(
    store: &dyn Store,
    challenge: &ChallengeRecord,
    track: Track,
    split: Split,
    names: &HashMap<TeamId, String>,
) -> Result<Table, StoreError> {
    let counted: HashSet<TeamId> = store.counted_teams().await?.into_iter().collect();
    let mut standings: Vec<_> = store
        .track_standings(challenge.id, track, split)
        .await?
        .into_iter()
        .filter(|s| counted.contains(&s.team_id))
        .collect();
    leaderboard::order(&mut standings);
    let rows = standings
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = ranked(i, s.team_id, names);
            row.extend([
                int(s.submission_id),
                Cell::Float(s.score),
                int(s.opponents),
                s.queries_used.map_or(Cell::Null, Cell::Int),
                int(s.reached_at),
            ]);
            row
        })
        .collect();
    Ok(Table {
        columns: vec![
            "rank",
            "team_id",
            "team",
            "submission_id",
            "score",
            "opponents",
            "queries_used",
            "reached_at",
        ],
        rows,
    })
}

/// Every matrix cell of a challenge, both splits.
pub async fn matrix(store: &dyn Store, challenge: &ChallengeRecord) -> Result<Table, StoreError> {
    let rows = store
        .evaluations(challenge.id)
        .await?
        .iter()
        .map(|c| {
            vec![
                text(c.attacker.key()),
                text(c.defender.key()),
                text(c.split.as_str()),
                int(c.total),
                int(c.fooled),
                int(c.created_at),
            ]
        })
        .collect();
    Ok(Table {
        columns: vec![
            "attacker",
            "defender",
            "split",
            "total",
            "hits",
            "created_at",
        ],
        rows,
    })
}

/// Every submission of a challenge, every track and status, by id.
pub async fn submissions(
    store: &dyn Store,
    challenge: &ChallengeRecord,
    names: &HashMap<TeamId, String>,
) -> Result<Table, StoreError> {
    let filter = SubmissionFilter {
        challenge: Some(challenge.id),
        ..SubmissionFilter::default()
    };
    let (mut all, _) = store.list_submissions(&filter, i64::MAX, 0).await?;
    all.reverse(); // oldest first
    let rows = all
        .iter()
        .map(|s| {
            vec![
                int(s.id),
                int(s.team_id),
                text(names.get(&s.team_id).cloned().unwrap_or_default()),
                int(s.user_id),
                text(s.track.as_str()),
                text(s.status.as_str()),
                text(s.filename.clone()),
                text(s.blob_sha256.clone()),
                int(s.size),
                int(s.created_at),
                s.finished_at.map_or(Cell::Null, Cell::Int),
                Cell::Int(i64::from(s.chosen)),
                text(s.message.clone()),
            ]
        })
        .collect();
    Ok(Table {
        columns: vec![
            "id",
            "team_id",
            "team",
            "user_id",
            "track",
            "status",
            "filename",
            "sha256",
            "size",
            "created_at",
            "finished_at",
            "chosen",
            "message",
        ],
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec!["team", "score", "note"],
            rows: vec![
                vec![text("Red"), Cell::Float(0.5), Cell::Null],
                vec![text("=HYPERLINK(\"x\")"), Cell::Int(-3), text("a,b\n\"c\"")],
                vec![text("-1+1"), Cell::Float(f64::NAN), text("@home")],
            ],
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas_but_not_numbers() {
        assert_eq!(
            table().csv(),
            "team,score,note\r\n\
             Red,0.5,\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",-3,\"a,b\n\"\"c\"\"\"\r\n\
             '-1+1,,'@home\r\n"
        );
    }

    #[test]
    fn json_is_one_object_per_row() {
        let json = table().json();
        assert_eq!(
            json[0],
            serde_json::json!({"team": "Red", "score": 0.5, "note": null})
        );
        assert_eq!(
            json[1]["team"], "=HYPERLINK(\"x\")",
            "JSON keeps text as is"
        );
        assert_eq!(json[2]["score"], serde_json::Value::Null, "NaN is null");
    }
}
