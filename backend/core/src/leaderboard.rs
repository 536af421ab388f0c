//! Ranking teams from the all-vs-all matrix (NIPS 2017 adversarial competition).
//!
//! An attack's score is the sum, over every defender it faced (organizer targets
//! and accepted defenses), of the share of inputs it fooled. A defense's score is
//! the sum, over every attacker it faced (reference attacks and accepted attack
//! files), of the share of inputs it still classified correctly. Each team's best
//! submission counts, unless the team chose another; equal scores go to the team
//! that spent fewer black-box queries (model extraction records them), then to
//! whoever reached theirs first.

use serde::Serialize;

use crate::store::{Evaluation, Party, Split, Submission, TeamId, Track};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub team_id: TeamId,
    pub submission_id: i64,
    pub score: f64,
    /// How many opponents the score sums over.
    pub opponents: usize,
    /// Queries spent when it was scored (the first tie-breaker, where recorded).
    pub queries_used: Option<i64>,
    /// When the counted submission was made (the last tie-breaker).
    pub reached_at: i64,
}

impl Standing {
    /// Tie-breakers, smaller first: fewer queries (none recorded counts as
    /// none spent), earlier, lower id.
    fn tie_key(&self) -> (i64, i64, i64) {
        (
            self.queries_used.unwrap_or(0),
            self.reached_at,
            self.submission_id,
        )
    }
}

/// The score of one submission on `split`, and the number of opponents it sums over.
pub fn submission_score(track: Track, id: i64, split: Split, cells: &[Evaluation]) -> (f64, usize) {
    let me = Party::Submission(id);
    let mut score = 0.0;
    let mut opponents = 0;
    for cell in cells.iter().filter(|c| c.split == split && c.total > 0) {
        let share = match track {
            Track::Attack if cell.attacker == me => cell.fooled as f64 / cell.total as f64,
            Track::Defense if cell.defender == me => {
                (cell.total - cell.fooled) as f64 / cell.total as f64
            }
            _ => continue,
        };
        score += share;
        opponents += 1;
    }
    (score, opponents)
}

/// Rank teams by their chosen, else best, scored submission on `track`.
pub fn rank(
    track: Track,
    split: Split,
    scored: &[Submission],
    cells: &[Evaluation],
) -> Vec<Standing> {
    let mut best: Vec<(Standing, bool)> = Vec::new();
    for s in scored.iter().filter(|s| s.track == track) {
        let (score, opponents) = submission_score(track, s.id, split, cells);
        let candidate = Standing {
            team_id: s.team_id,
            submission_id: s.id,
            score,
            opponents,
            queries_used: s.queries_used,
            reached_at: s.created_at,
        };
        match best.iter_mut().find(|(b, _)| b.team_id == s.team_id) {
            Some((current, current_chosen)) => {
                if !*current_chosen && (s.chosen || better(&candidate, current)) {
                    *current = candidate;
                    *current_chosen = s.chosen;
                }
            }
            None => best.push((candidate, s.chosen)),
        }
    }
    let mut best: Vec<Standing> = best.into_iter().map(|(s, _)| s).collect();
    best.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.tie_key().cmp(&b.tie_key()))
    });
    best
}

fn better(a: &Standing, b: &Standing) -> bool {
    a.score > b.score || (a.score == b.score && a.tie_key() < b.tie_key())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::SubmissionStatus;

    fn sub(id: i64, team: i64, track: Track, at: i64) -> Submission {
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
            finished_at: None,
            details: String::new(),
            chosen: false,
            queries_used: None,
        }
    }

    fn cell(attacker: Party, defender: Party, split: Split, total: i64, fooled: i64) -> Evaluation {
        Evaluation {
            attacker,
            defender,
            split,
            total,
            fooled,
            created_at: 0,
        }
    }

    #[test]
    fn attacks_sum_fooled_shares_and_defenses_sum_kept_accuracy() {
        let org = |n: &str| Party::Organizer(n.to_owned());
        let cells = vec![
            // attack 1 (team 10): fools 150/300 of mlp, 30/300 of cnn, 60/300 of defense 3
            cell(Party::Submission(1), org("mlp"), Split::Public, 300, 150),
            cell(Party::Submission(1), org("cnn"), Split::Public, 300, 30),
            cell(
                Party::Submission(1),
                Party::Submission(3),
                Split::Public,
                300,
                60,
            ),
            cell(Party::Submission(1), org("mlp"), Split::Private, 700, 700),
            // attack 2 (team 11): fools everything on mlp only
            cell(Party::Submission(2), org("mlp"), Split::Public, 300, 300),
            // defense 3 (team 12) vs the reference attack: 25/30 fooled
            cell(
                Party::Reference("square-linf".into()),
                Party::Submission(3),
                Split::Public,
                30,
                25,
            ),
        ];
        let subs = [
            sub(1, 10, Track::Attack, 5),
            sub(2, 11, Track::Attack, 4),
            sub(3, 12, Track::Defense, 1),
        ];
        // attack 1: 0.5 + 0.1 + 0.2 = 0.8 ; attack 2: 1.0
        let board = rank(Track::Attack, Split::Public, &subs, &cells);
        assert_eq!(
            board.iter().map(|s| s.team_id).collect::<Vec<_>>(),
            [11, 10]
        );
        assert!((board[1].score - 0.8).abs() < 1e-12);
        assert_eq!(board[1].opponents, 3);
        // private split counts only private cells
        let private = rank(Track::Attack, Split::Private, &subs, &cells);
        assert_eq!(private[0].team_id, 10);
        assert!((private[0].score - 1.0).abs() < 1e-12);
        // defense 3: kept 240/300 against attack 1 and 5/30 against square = 0.8 + 1/6
        let defense = rank(Track::Defense, Split::Public, &subs, &cells);
        assert_eq!(defense.len(), 1);
        assert!((defense[0].score - (0.8 + 5.0 / 30.0)).abs() < 1e-12);
    }

    #[test]
    fn a_team_counts_its_best_and_ties_go_to_the_earlier() {
        let org = Party::Organizer("m".into());
        let cells = vec![
            cell(Party::Submission(1), org.clone(), Split::Public, 10, 5),
            cell(Party::Submission(2), org.clone(), Split::Public, 10, 7),
            cell(Party::Submission(3), org.clone(), Split::Public, 10, 7),
        ];
        // team 1 made 1 and 2; team 2 made 3 earlier than 2
        let subs = [
            sub(1, 1, Track::Attack, 1),
            sub(2, 1, Track::Attack, 50),
            sub(3, 2, Track::Attack, 20),
        ];
        let board = rank(Track::Attack, Split::Public, &subs, &cells);
        assert_eq!(board.len(), 2);
        assert_eq!(
            (board[0].team_id, board[0].submission_id),
            (2, 3),
            "equal 0.7: the earlier wins"
        );
        assert_eq!(
            (board[1].team_id, board[1].submission_id),
            (1, 2),
            "team 1's best counts"
        );
        // team 1 chooses its weaker submission: it counts, and now ranks below
        let mut chosen = subs.clone();
        chosen[0].chosen = true;
        let board = rank(Track::Attack, Split::Public, &chosen, &cells);
        assert_eq!(
            (board[1].team_id, board[1].submission_id, board[1].score),
            (1, 1, 0.5)
        );
    }

    #[test]
    fn equal_scores_go_to_fewer_queries_before_earlier() {
        let org = Party::Organizer("victim".into());
        let cells = vec![
            cell(Party::Submission(1), org.clone(), Split::Public, 10, 9),
            cell(Party::Submission(2), org.clone(), Split::Public, 10, 9),
            cell(Party::Submission(3), org.clone(), Split::Public, 10, 9),
            cell(Party::Submission(4), org.clone(), Split::Public, 10, 9),
        ];
        let mut subs = [
            sub(1, 1, Track::Attack, 1),
            sub(2, 2, Track::Attack, 2),
            sub(3, 3, Track::Attack, 3),
            sub(4, 1, Track::Attack, 4),
        ];
        subs[0].queries_used = Some(5_000);
        subs[1].queries_used = Some(800);
        subs[2].queries_used = Some(800);
        // team 1 later matched its score with fewer queries: that one counts
        subs[3].queries_used = Some(100);
        let board = rank(Track::Attack, Split::Public, &subs, &cells);
        assert_eq!(
            board
                .iter()
                .map(|s| (s.team_id, s.submission_id))
                .collect::<Vec<_>>(),
            [(1, 4), (2, 2), (3, 3)]
        );
    }
}
