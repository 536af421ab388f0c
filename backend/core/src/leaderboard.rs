//! Ranking teams from the all-vs-all matrix (NIPS 2017 adversarial competition).
//!
//! An attack's score is the sum, over every defender it faced (organizer targets
//! and accepted defenses), of the share of inputs it fooled. A defense's score is
//! the sum, over every attacker it faced (reference attacks and accepted attack
//! files), of the share of inputs it still classified correctly. A defense board
//! whose bundle sets `rank_by = "worst_case"` (the default for bundles imported
//! since the rule exists) ranks instead by worst-case robust accuracy
//! (RobustBench, AutoAttack): the share of the split's examples the defense gets
//! right under every attack it faced, from the cells' per-example results
//! ([`Fooled`]); many weak attacks then cannot outweigh the one that breaks it.
//! Each team's best submission counts, unless the team chose another; equal
//! scores go to the team that spent fewer black-box queries (model extraction
//! records them), then to whoever reached theirs first.
//!
//! The event score puts every challenge on one scale ([`event_scores`]): a flag
//! solve earns the flag's current value (CTFd's dynamic scoring; only counted
//! teams' solves lower it), and a track earns the challenge's `points` times the
//! team's track score divided by the best counted team's track score
//! ([`track_points`]: the leader gets the full points, nobody gets any when the
//! best score is zero). Teams that do not count (staff-only, banned or hidden
//! members only: `Store::counted_teams`) are left out before the best is taken.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::challenge::{FlagSpec, RankBy};
use crate::examples::ExampleBits;
use crate::store::{Evaluation, Party, Solve, Split, Submission, TeamId, Track};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub team_id: TeamId,
    pub submission_id: i64,
    /// What the board ranks by: the sum of shares, or for a defense board ranked
    /// by [`RankBy::WorstCase`] the worst-case robust accuracy.
    pub score: f64,
    /// How many opponents the score sums over.
    pub opponents: usize,
    /// The sum of shares (NIPS 2017), whichever rule ranks.
    pub sum: f64,
    /// A defense's worst-case robust accuracy ([`worst_case_scores`]); `None` on
    /// attack boards and where a cell has no per-example results.
    pub worst_case: Option<f64>,
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

/// [`submission_score`] of every submission that has a cell on `split`, in one
/// pass over the cells (adding in the same order, so the sums are bit-identical).
pub fn submission_scores(
    track: Track,
    split: Split,
    cells: &[Evaluation],
) -> HashMap<i64, (f64, usize)> {
    let mut scores: HashMap<i64, (f64, usize)> = HashMap::new();
    for cell in cells.iter().filter(|c| c.split == split && c.total > 0) {
        let (party, share) = match track {
            Track::Attack => (&cell.attacker, cell.fooled as f64 / cell.total as f64),
            Track::Defense => (
                &cell.defender,
                (cell.total - cell.fooled) as f64 / cell.total as f64,
            ),
        };
        if let Party::Submission(id) = party {
            let entry = scores.entry(*id).or_insert((0.0, 0));
            entry.0 += share;
            entry.1 += 1;
        }
    }
    scores
}

/// A defender's per-example results on one split: the union of the examples
/// every attack fooled, over the largest split any of its cells covered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fooled {
    /// Examples the union covers (the largest cell's `total`).
    pub total: usize,
    pub union: Option<ExampleBits>,
    /// A cell without per-example results was seen: the worst case is unknown.
    pub incomplete: bool,
}

impl Fooled {
    /// Take in one more cell against this defender.
    pub fn add(&mut self, cell: &Evaluation) {
        match &cell.examples {
            Some(bits) => {
                self.total = self.total.max(usize::try_from(cell.total).unwrap_or(0));
                self.union = Some(match &self.union {
                    Some(u) => u.union(bits),
                    None => bits.clone(),
                });
            }
            None => self.incomplete = true,
        }
    }

    /// Worst-case robust accuracy: the share of the covered examples no attack
    /// fooled; `None` when a cell had no per-example results or none covered any.
    pub fn worst_case(&self) -> Option<f64> {
        if self.incomplete {
            return None;
        }
        crate::examples::worst_case(self.total, self.union.as_ref()?)
    }
}

/// Each defending submission's [`Fooled`] on `split`, over its cells with examples.
pub fn worst_case_scores(split: Split, cells: &[Evaluation]) -> HashMap<i64, Fooled> {
    let mut out: HashMap<i64, Fooled> = HashMap::new();
    for cell in cells.iter().filter(|c| c.split == split && c.total > 0) {
        if let Party::Submission(id) = cell.defender {
            out.entry(id).or_default().add(cell);
        }
    }
    out
}

/// What only one attack breaks: per defender it faced on a split, the examples
/// it fooled that no other attacker in the matrix fooled against that defender
/// (other teams' attacks, the same team's other attacks, the reference attacks and
/// the background battery all count as others).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OnlyBreaks {
    /// Summed over the defenders: (defender, example) pairs only this attack breaks.
    pub examples: usize,
    /// Per defender (its `Party::key`), in key order, including zeros.
    pub by_defender: Vec<(String, usize)>,
}

/// [`OnlyBreaks`] of `attacker` on `split`; `None` when it has no cell there or
/// a cell against a defender it faced has no per-example results (the count
/// would be a guess).
pub fn only_this_attack_breaks(
    attacker: &Party,
    split: Split,
    cells: &[Evaluation],
) -> Option<OnlyBreaks> {
    // Per defender: this attack's fooled examples, and every other attacker's union.
    let mut mine: BTreeMap<String, ExampleBits> = BTreeMap::new();
    let mut others: BTreeMap<String, ExampleBits> = BTreeMap::new();
    let mut unknown = false;
    let on_split = || cells.iter().filter(|c| c.split == split && c.total > 0);
    let faced: HashSet<String> = on_split()
        .filter(|c| &c.attacker == attacker)
        .map(|c| c.defender.key())
        .collect();
    for cell in on_split() {
        let defender = cell.defender.key();
        if !faced.contains(&defender) {
            continue;
        }
        let Some(bits) = &cell.examples else {
            unknown = true;
            continue;
        };
        let map = if &cell.attacker == attacker {
            &mut mine
        } else {
            &mut others
        };
        let joined = match map.get(&defender) {
            Some(u) => u.union(bits),
            None => bits.clone(),
        };
        map.insert(defender, joined);
    }
    if faced.is_empty() || unknown {
        return None;
    }
    let by_defender: Vec<(String, usize)> = mine
        .into_iter()
        .map(|(defender, bits)| {
            let only = match others.get(&defender) {
                Some(o) => bits.minus(o).count(),
                None => bits.count(),
            };
            (defender, only)
        })
        .collect();
    Some(OnlyBreaks {
        examples: by_defender.iter().map(|(_, n)| n).sum(),
        by_defender,
    })
}

/// The score a board ranks by, from a submission's sum and worst case.
pub fn ranked_score(track: Track, rule: RankBy, sum: f64, worst_case: Option<f64>) -> f64 {
    match (track, rule) {
        (Track::Defense, RankBy::WorstCase) => worst_case.unwrap_or(0.0),
        _ => sum,
    }
}

/// Rank teams by their chosen, else best, scored submission on `track`; a
/// defense board by `rule`.
pub fn rank(
    track: Track,
    split: Split,
    rule: RankBy,
    scored: &[Submission],
    cells: &[Evaluation],
) -> Vec<Standing> {
    let scores = submission_scores(track, split, cells);
    let worst = match track {
        Track::Defense => worst_case_scores(split, cells),
        Track::Attack => HashMap::new(),
    };
    let mut by_team: HashMap<TeamId, Vec<(Standing, bool)>> = HashMap::new();
    for s in scored.iter().filter(|s| s.track == track) {
        let (sum, opponents) = scores.get(&s.id).copied().unwrap_or((0.0, 0));
        let worst_case = worst.get(&s.id).and_then(Fooled::worst_case);
        by_team.entry(s.team_id).or_default().push((
            Standing {
                team_id: s.team_id,
                submission_id: s.id,
                score: ranked_score(track, rule, sum, worst_case),
                opponents,
                sum,
                worst_case,
                queries_used: s.queries_used,
                reached_at: s.created_at,
            },
            s.chosen,
        ));
    }
    let mut best: Vec<Standing> = by_team.into_values().filter_map(team_standing).collect();
    order(&mut best);
    best
}

/// The submission a team's place counts, from its scored submissions on one
/// track (each with whether the team chose it): the chosen one, else the best
/// (higher score, then [`Standing::tie_key`]). `None` without candidates.
pub fn team_standing(candidates: impl IntoIterator<Item = (Standing, bool)>) -> Option<Standing> {
    let mut current: Option<(Standing, bool)> = None;
    for (candidate, chosen) in candidates {
        current = match current {
            Some((held, held_chosen)) if held_chosen || !(chosen || better(&candidate, &held)) => {
                Some((held, held_chosen))
            }
            _ => Some((candidate, chosen)),
        };
    }
    current.map(|(s, _)| s)
}

/// Sort standings into board order: higher score first, then the tie-breakers.
pub fn order(standings: &mut [Standing]) {
    standings.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.tie_key().cmp(&b.tie_key()))
    });
}

fn better(a: &Standing, b: &Standing) -> bool {
    a.score > b.score || (a.score == b.score && a.tie_key() < b.tie_key())
}

/// What one track earns: `points * score / best`, the leader getting the full
/// points; nothing when the best score is not positive (nobody scored).
pub fn track_points(points: u32, score: f64, best: f64) -> f64 {
    if best > 0.0 && score > 0.0 {
        f64::from(points) * (score / best).min(1.0)
    } else {
        0.0
    }
}

/// One track of one challenge, ranked ([`rank`]) on the split it shows now.
#[derive(Debug, Clone)]
pub struct TrackStanding {
    pub challenge: String,
    pub track: Track,
    /// The challenge's `points`.
    pub points: u32,
    pub standings: Vec<Standing>,
}

/// One flag challenge as the event score counts it: its counted solvers and the
/// value each of them holds now.
#[derive(Debug, Clone)]
pub struct FlagStanding {
    pub challenge: String,
    pub flag: FlagSpec,
    /// Counted solvers (team, when), first first.
    pub solvers: Vec<(TeamId, i64)>,
}

impl FlagStanding {
    /// Keeps the counted solves only ([`Solve::counted`]).
    pub fn new(challenge: &str, flag: &FlagSpec, solves: &[Solve]) -> Self {
        Self {
            challenge: challenge.to_owned(),
            flag: flag.clone(),
            solvers: solves
                .iter()
                .filter(|s| s.counted)
                .map(|s| (s.team_id, s.created_at))
                .collect(),
        }
    }

    /// The value every counted solver holds now (CTFd's dynamic value after the
    /// counted solves; the initial value before any).
    pub fn value(&self) -> u64 {
        self.value_at(i64::MAX)
    }

    /// The value once the solves made at or before `t` are in.
    pub fn value_at(&self, t: i64) -> u64 {
        let solves = self.solvers.iter().filter(|(_, at)| *at <= t).count();
        self.flag
            .value_after(u64::try_from(solves).unwrap_or(u64::MAX))
    }
}

/// What a part of the event score comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    Attack,
    Defense,
    Flag,
    /// Hints unlocked on the challenge: their costs, taken off.
    Hint,
}

impl PartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Attack => "attack",
            PartKind::Defense => "defense",
            PartKind::Flag => "flag",
            PartKind::Hint => "hint",
        }
    }
}

/// One challenge's (track's) share of a team's event score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPart {
    pub challenge: String,
    pub kind: PartKind,
    /// The track score (sum of shares) or, for a flag, its current value.
    pub score: f64,
    /// The best counted team's track score (the flag's value for a flag).
    pub best: f64,
    /// What the part adds to the event score.
    pub points: f64,
    /// The counted submission (tracks only).
    pub submission: Option<i64>,
}

/// A team's place on the event scoreboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventScore {
    pub team_id: TeamId,
    /// The sum of the parts' points.
    pub points: f64,
    /// When the latest counted submission or solve was made (the tie-breaker).
    pub reached_at: i64,
    pub parts: Vec<EventPart>,
}

/// The event scoreboard: every counted team with a scored submission or a solve,
/// by points (most first), then by who reached theirs first, then team id.
/// Standings of teams outside `counted` are dropped before each track's best is
/// taken; flag solvers are counted already ([`FlagStanding::new`]).
pub fn event_scores(
    tracks: &[TrackStanding],
    flags: &[FlagStanding],
    counted: &HashSet<TeamId>,
) -> Vec<EventScore> {
    let mut teams: BTreeMap<TeamId, EventScore> = BTreeMap::new();
    fn entry(teams: &mut BTreeMap<TeamId, EventScore>, team: TeamId) -> &mut EventScore {
        teams.entry(team).or_insert_with(|| EventScore {
            team_id: team,
            points: 0.0,
            reached_at: i64::MIN,
            parts: Vec::new(),
        })
    }
    for track in tracks {
        let standings: Vec<&Standing> = track
            .standings
            .iter()
            .filter(|s| counted.contains(&s.team_id))
            .collect();
        let best = standings.iter().map(|s| s.score).fold(0.0, f64::max);
        for s in standings {
            let points = track_points(track.points, s.score, best);
            let team = entry(&mut teams, s.team_id);
            team.points += points;
            team.reached_at = team.reached_at.max(s.reached_at);
            team.parts.push(EventPart {
                challenge: track.challenge.clone(),
                kind: match track.track {
                    Track::Attack => PartKind::Attack,
                    Track::Defense => PartKind::Defense,
                },
                score: s.score,
                best,
                points,
                submission: Some(s.submission_id),
            });
        }
    }
    for flag in flags {
        let value = flag.value() as f64;
        for &(team_id, at) in &flag.solvers {
            if !counted.contains(&team_id) {
                continue;
            }
            let team = entry(&mut teams, team_id);
            team.points += value;
            team.reached_at = team.reached_at.max(at);
            team.parts.push(EventPart {
                challenge: flag.challenge.clone(),
                kind: PartKind::Flag,
                score: value,
                best: value,
                points: value,
                submission: None,
            });
        }
    }
    let mut ranked: Vec<EventScore> = teams.into_values().collect();
    order_event(&mut ranked);
    ranked
}

/// The scoreboard's order: most points, then who reached theirs first, then
/// team id.
fn order_event(ranked: &mut [EventScore]) {
    ranked.sort_by(|a, b| {
        b.points
            .total_cmp(&a.points)
            .then(a.reached_at.cmp(&b.reached_at))
            .then(a.team_id.cmp(&b.team_id))
    });
}

/// A hint a team unlocked, at the cost it paid then.
#[derive(Debug, Clone, PartialEq)]
pub struct HintCost {
    pub challenge: String,
    pub team_id: TeamId,
    pub cost: u64,
    pub at: i64,
}

/// The event scoreboard with hint costs taken off (CTFd's rule): every counted
/// team's unlocked hints subtract their cost, one `hint` part per challenge; a
/// team whose only parts are hints enters with a negative score (its latest
/// unlock as its time). Ranked again by the scoreboard's order. Track and flag
/// points are not changed: a hint costs its price, not a share of the best.
pub fn with_hint_costs(
    scores: Vec<EventScore>,
    hints: &[HintCost],
    counted: &HashSet<TeamId>,
) -> Vec<EventScore> {
    let mut teams: BTreeMap<TeamId, EventScore> =
        scores.into_iter().map(|s| (s.team_id, s)).collect();
    let scoring: HashSet<TeamId> = teams.keys().copied().collect();
    let mut costs: BTreeMap<(TeamId, &str), (u64, i64)> = BTreeMap::new();
    for h in hints.iter().filter(|h| counted.contains(&h.team_id)) {
        let entry = costs.entry((h.team_id, h.challenge.as_str())).or_default();
        entry.0 += h.cost;
        entry.1 = entry.1.max(h.at);
    }
    for ((team_id, challenge), (cost, at)) in costs {
        let team = teams.entry(team_id).or_insert_with(|| EventScore {
            team_id,
            points: 0.0,
            reached_at: at,
            parts: Vec::new(),
        });
        if !scoring.contains(&team_id) {
            team.reached_at = team.reached_at.max(at);
        }
        let cost = cost as f64;
        team.points -= cost;
        team.parts.push(EventPart {
            challenge: challenge.to_owned(),
            kind: PartKind::Hint,
            score: cost,
            best: cost,
            points: -cost,
            submission: None,
        });
    }
    let mut ranked: Vec<EventScore> = teams.into_values().collect();
    order_event(&mut ranked);
    ranked
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::challenge::Decay;

    fn standing(team: TeamId, submission: i64, score: f64, at: i64) -> Standing {
        Standing {
            team_id: team,
            submission_id: submission,
            score,
            opponents: 1,
            sum: score,
            worst_case: None,
            queries_used: None,
            reached_at: at,
        }
    }

    fn flag(initial: u64, minimum: u64, decay: u64) -> FlagSpec {
        FlagSpec {
            sha256: String::new(),
            initial,
            minimum,
            decay,
            function: Decay::Linear,
        }
    }

    fn solve(team: TeamId, at: i64, counted: bool) -> Solve {
        Solve {
            team_id: team,
            user_id: team,
            created_at: at,
            counted,
        }
    }

    #[test]
    fn track_points_by_hand() {
        assert_eq!(track_points(100, 1.5, 2.0), 75.0);
        assert_eq!(track_points(100, 2.0, 2.0), 100.0, "the leader gets it all");
        assert_eq!(track_points(100, 0.0, 2.0), 0.0);
        assert_eq!(track_points(100, 0.0, 0.0), 0.0, "nobody scored");
        assert_eq!(track_points(0, 1.0, 1.0), 0.0);
    }

    #[test]
    fn flag_value_counts_counted_solves_only() {
        // linear: 500, minus 100 per solve after the first, floored at 200
        let f = flag(500, 200, 100);
        let solves = [
            solve(1, 10, true),
            solve(2, 20, false), // an organizer's team: does not lower the value
            solve(3, 30, true),
            solve(4, 40, true),
            solve(5, 50, true),
        ];
        let standing = FlagStanding::new("f", &f, &solves);
        assert_eq!(standing.solvers, [(1, 10), (3, 30), (4, 40), (5, 50)]);
        // 4 counted solves: 500 - 3 * 100 = 200
        assert_eq!(standing.value(), 200);
        assert_eq!(standing.value_at(35), 400, "two counted solves by 35");
        assert_eq!(standing.value_at(5), 500);
        // banning team 5 (no longer counted) raises the value to 300
        let mut banned = solves.clone();
        banned[4].counted = false;
        assert_eq!(FlagStanding::new("f", &f, &banned).value(), 300);
    }

    #[test]
    fn event_scores_by_hand() {
        // challenge "ev" (100 points): attack scores team 1: 1.5, team 2: 2.0 (best),
        // team 9 (staff) 3.0 is left out before the best is taken.
        let tracks = [
            TrackStanding {
                challenge: "ev".into(),
                track: Track::Attack,
                points: 100,
                standings: vec![
                    standing(9, 90, 3.0, 1),
                    standing(2, 20, 2.0, 5),
                    standing(1, 10, 1.5, 7),
                ],
            },
            // defense track of "ev": only team 1, score 0.8: the leader gets 100
            TrackStanding {
                challenge: "ev".into(),
                track: Track::Defense,
                points: 100,
                standings: vec![standing(1, 11, 0.8, 3)],
            },
            // a track where nobody scored: zero for all
            TrackStanding {
                challenge: "zero".into(),
                track: Track::Attack,
                points: 50,
                standings: vec![standing(2, 21, 0.0, 2)],
            },
        ];
        // flag "f": 500 linear -100, minimum 200; counted solvers 2 then 3 => value 400
        let flags = [FlagStanding::new(
            "f",
            &flag(500, 200, 100),
            &[solve(2, 8, true), solve(9, 9, false), solve(3, 12, true)],
        )];
        let counted: HashSet<TeamId> = [1, 2, 3].into();
        let board = event_scores(&tracks, &flags, &counted);
        let summary: Vec<(TeamId, f64)> = board.iter().map(|t| (t.team_id, t.points)).collect();
        // team 1: 100 * 1.5 / 2.0 = 75, + defense 100 = 175
        // team 2: 100 (attack leader) + 0 (zero track) + 400 (flag) = 500
        // team 3: 400 (flag)
        assert_eq!(summary, [(2, 500.0), (3, 400.0), (1, 175.0)]);
        let team1 = &board[2];
        assert_eq!(team1.parts.len(), 2);
        assert_eq!(team1.parts[0].kind, PartKind::Attack);
        assert_eq!(
            (
                team1.parts[0].score,
                team1.parts[0].best,
                team1.parts[0].points
            ),
            (1.5, 2.0, 75.0)
        );
        assert_eq!(team1.parts[0].submission, Some(10));
        assert_eq!(board[0].reached_at, 8, "team 2's latest: the solve at 8");
        assert!(board.iter().all(|t| t.team_id != 9), "staff are not listed");

        // equal points: the team that reached them first ranks higher
        let tie = [TrackStanding {
            challenge: "t".into(),
            track: Track::Attack,
            points: 10,
            standings: vec![standing(5, 1, 1.0, 40), standing(4, 2, 1.0, 30)],
        }];
        let counted: HashSet<TeamId> = [4, 5].into();
        let order: Vec<TeamId> = event_scores(&tie, &[], &counted)
            .iter()
            .map(|t| t.team_id)
            .collect();
        assert_eq!(order, [4, 5]);
    }

    /// Not yet marked scored (`finished_at` unset): the ranking falls back to
    /// the upload time.
    fn sub(id: i64, team: i64, track: Track, at: i64) -> Submission {
        Submission {
            finished_at: None,
            ..crate::testing::submission(id, team, track, at)
        }
    }

    fn cell(attacker: Party, defender: Party, split: Split, total: i64, fooled: i64) -> Evaluation {
        crate::testing::cell(attacker, defender, split, total, fooled, 0)
    }

    #[test]
    fn worst_case_ranks_by_examples_correct_under_every_attack() {
        use crate::testing::cell_with_examples as bits;
        let (a1, a2, reference) = (
            Party::Submission(1),
            Party::Submission(2),
            Party::Reference("square-linf".into()),
        );
        let (d3, d4) = (Party::Submission(3), Party::Submission(4));
        let pb = Split::Public;
        let cells = vec![
            // defense 3: a1 fools {0, 1}, a2 fools {1}, the reference {2}: 3 of 10
            // examples broken (0.7 worst case); sum 0.8 + 0.9 + 0.9 = 2.6
            bits(a1.clone(), d3.clone(), pb, 10, &[0, 1], 1),
            bits(a2.clone(), d3.clone(), pb, 10, &[1], 1),
            bits(reference.clone(), d3.clone(), pb, 10, &[2], 1),
            // defense 4: a1 fools nothing, a2 nothing, the reference {0..5}:
            // worst case 0.5, sum 1 + 1 + 0.5 = 2.5
            bits(a1, d4.clone(), pb, 10, &[], 1),
            bits(a2, d4.clone(), pb, 10, &[], 1),
            bits(reference, d4, pb, 10, &[0, 1, 2, 3, 4], 1),
        ];
        let subs = vec![
            sub(1, 10, Track::Attack, 1),
            sub(2, 11, Track::Attack, 1),
            sub(3, 20, Track::Defense, 1),
            sub(4, 21, Track::Defense, 2),
        ];
        let worst = rank(Track::Defense, pb, RankBy::WorstCase, &subs, &cells);
        let got: Vec<(i64, f64, f64, Option<f64>)> = worst
            .iter()
            .map(|s| (s.submission_id, s.score, s.sum, s.worst_case))
            .collect();
        assert_eq!(got[0].0, 3);
        assert!((got[0].1 - 0.7).abs() < 1e-12 && (got[0].2 - 2.6).abs() < 1e-12);
        assert_eq!(got[0].3, Some(got[0].1));
        assert_eq!(got[1].0, 4);
        assert!((got[1].1 - 0.5).abs() < 1e-12 && (got[1].2 - 2.5).abs() < 1e-12);
        // The same cells under the sum rule: same order here, scores are the sums.
        let sum = rank(Track::Defense, pb, RankBy::Sum, &subs, &cells);
        assert_eq!(sum[0].score, sum[0].sum);
        assert_eq!(sum[0].worst_case, worst[0].worst_case);
        // Many weak attacks: give defense 4 two more cells that fool nothing and
        // defense 3 one that breaks {3}: under the sum 4 now leads (4.5 vs 3.5),
        // under the worst case 3 still does (0.6 vs 0.5).
        let mut more = cells.clone();
        more.push(bits(
            Party::Submission(5),
            Party::Submission(4),
            pb,
            10,
            &[],
            2,
        ));
        more.push(bits(
            Party::Submission(6),
            Party::Submission(4),
            pb,
            10,
            &[],
            2,
        ));
        more.push(bits(
            Party::Submission(5),
            Party::Submission(3),
            pb,
            10,
            &[3],
            2,
        ));
        let by_sum = rank(Track::Defense, pb, RankBy::Sum, &subs, &more);
        assert_eq!(by_sum[0].submission_id, 4);
        let by_worst = rank(Track::Defense, pb, RankBy::WorstCase, &subs, &more);
        assert_eq!(by_worst[0].submission_id, 3);
        assert!((by_worst[0].score - 0.6).abs() < 1e-12);
        // A cell without per-example results leaves the worst case unknown (0 for ranking).
        let mut old = more.clone();
        old.push(cell(Party::Submission(7), Party::Submission(3), pb, 10, 0));
        let unknown = rank(Track::Defense, pb, RankBy::WorstCase, &subs, &old);
        let three = unknown.iter().find(|s| s.submission_id == 3).unwrap();
        assert_eq!((three.worst_case, three.score), (None, 0.0));
        // Attack boards ignore the rule.
        let attacks = rank(Track::Attack, pb, RankBy::WorstCase, &subs, &cells);
        assert!(
            attacks
                .iter()
                .all(|s| s.score == s.sum && s.worst_case.is_none())
        );
    }

    #[test]
    fn only_this_attack_breaks_counts_examples_no_other_attacker_fooled() {
        use crate::testing::cell_with_examples as bits;
        let (a1, a2) = (Party::Submission(1), Party::Submission(2));
        let battery = Party::Reference("square-linf-battery".into());
        let (d3, mlp) = (Party::Submission(3), Party::Organizer("mlp".into()));
        let (pb, pv) = (Split::Public, Split::Private);
        let cells = vec![
            // defense 3: a1 fools {0, 1, 2}, a2 {1}, the battery {2, 3}: only a1
            // breaks 0; a2 breaks nothing alone.
            bits(a1.clone(), d3.clone(), pb, 8, &[0, 1, 2], 1),
            bits(a2.clone(), d3.clone(), pb, 8, &[1], 1),
            bits(battery.clone(), d3.clone(), pb, 8, &[2, 3], 1),
            // mlp: a1 alone fools {4, 5}; a2 never met it.
            bits(a1.clone(), mlp.clone(), pb, 8, &[4, 5], 1),
            // The private split is another matter.
            bits(a2.clone(), d3.clone(), pv, 8, &[0, 6], 1),
        ];
        let a1_public = only_this_attack_breaks(&a1, pb, &cells).unwrap();
        assert_eq!(a1_public.examples, 3);
        assert_eq!(
            a1_public.by_defender,
            [("org:mlp".to_owned(), 2), ("sub:3".to_owned(), 1)]
        );
        let a2_public = only_this_attack_breaks(&a2, pb, &cells).unwrap();
        assert_eq!((a2_public.examples, a2_public.by_defender.len()), (0, 1));
        assert_eq!(
            only_this_attack_breaks(&a2, pv, &cells).unwrap().examples,
            2
        );
        // Never on the split: nothing to say.
        assert_eq!(only_this_attack_breaks(&a1, pv, &cells), None);
        // A cell against a faced defender without per-example results: unknown;
        // one against a defender it never faced changes nothing.
        let mut blind = cells.clone();
        blind.push(cell(battery.clone(), mlp, pb, 8, 3));
        assert_eq!(only_this_attack_breaks(&a1, pb, &blind), None);
        let mut elsewhere = cells;
        elsewhere.push(cell(battery, Party::Submission(9), pb, 8, 3));
        assert_eq!(
            only_this_attack_breaks(&a1, pb, &elsewhere),
            Some(a1_public)
        );
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
        let board = rank(Track::Attack, Split::Public, RankBy::Sum, &subs, &cells);
        assert_eq!(
            board.iter().map(|s| s.team_id).collect::<Vec<_>>(),
            [11, 10]
        );
        assert!((board[1].score - 0.8).abs() < 1e-12);
        assert_eq!(board[1].opponents, 3);
        // private split counts only private cells
        let private = rank(Track::Attack, Split::Private, RankBy::Sum, &subs, &cells);
        assert_eq!(private[0].team_id, 10);
        assert!((private[0].score - 1.0).abs() < 1e-12);
        // defense 3: kept 240/300 against attack 1 and 5/30 against square = 0.8 + 1/6
        let defense = rank(Track::Defense, Split::Public, RankBy::Sum, &subs, &cells);
        assert_eq!(defense.len(), 1);
        assert!((defense[0].score - (0.8 + 5.0 / 30.0)).abs() < 1e-12);
    }

    #[test]
    fn one_pass_scores_equal_each_submissions_own_sum_bit_for_bit() {
        // a pseudo-random matrix: 40 attacks x (2 organizers + 15 defenses), both splits
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: i64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as i64
        };
        let mut cells = Vec::new();
        for a in 1..=40 {
            let mut defenders = vec![
                Party::Organizer("mlp".into()),
                Party::Organizer("cnn".into()),
            ];
            defenders.extend((100..115).map(Party::Submission));
            for d in defenders {
                for split in [Split::Public, Split::Private] {
                    let total = next(500);
                    cells.push(cell(
                        Party::Submission(a),
                        d.clone(),
                        split,
                        total,
                        next(total + 1),
                    ));
                }
            }
        }
        for track in [Track::Attack, Track::Defense] {
            for split in [Split::Public, Split::Private] {
                let all = submission_scores(track, split, &cells);
                for id in (1..=40).chain(100..115) {
                    let one = submission_score(track, id, split, &cells);
                    let got = all.get(&id).copied().unwrap_or((0.0, 0));
                    assert_eq!(got.0.to_bits(), one.0.to_bits(), "{track:?} {split:?} {id}");
                    assert_eq!(got.1, one.1);
                }
            }
        }
    }

    #[test]
    fn team_standing_takes_the_chosen_else_the_best_in_any_order() {
        let low = standing(1, 10, 0.5, 100);
        let high = standing(1, 11, 0.9, 200);
        let tie_later = standing(1, 12, 0.9, 300);
        let candidates = [
            (low.clone(), false),
            (high.clone(), false),
            (tie_later.clone(), false),
        ];
        // every order gives the same pick
        for rotation in 0..3 {
            let mut c = candidates.to_vec();
            c.rotate_left(rotation);
            assert_eq!(team_standing(c.clone()), Some(high.clone()));
            c.reverse();
            assert_eq!(team_standing(c), Some(high.clone()));
        }
        // the chosen one counts, even when it is worse
        let chosen = [
            (high.clone(), false),
            (low.clone(), true),
            (tie_later.clone(), false),
        ];
        assert_eq!(team_standing(chosen.to_vec()), Some(low.clone()));
        let mut reversed = chosen.to_vec();
        reversed.reverse();
        assert_eq!(team_standing(reversed), Some(low));
        // fewer queries win an equal score before the earlier time
        let mut frugal = tie_later.clone();
        frugal.queries_used = Some(0);
        let mut spender = high.clone();
        spender.queries_used = Some(5);
        assert_eq!(
            team_standing([(spender, false), (frugal.clone(), false)]),
            Some(frugal)
        );
        assert_eq!(team_standing(Vec::new()), None);
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
        let board = rank(Track::Attack, Split::Public, RankBy::Sum, &subs, &cells);
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
        let board = rank(Track::Attack, Split::Public, RankBy::Sum, &chosen, &cells);
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
        let board = rank(Track::Attack, Split::Public, RankBy::Sum, &subs, &cells);
        assert_eq!(
            board
                .iter()
                .map(|s| (s.team_id, s.submission_id))
                .collect::<Vec<_>>(),
            [(1, 4), (2, 2), (3, 3)]
        );
    }

    #[test]
    fn hint_costs_come_off_the_event_score_and_can_rank_a_team_lower() {
        let score = |team, points, at| EventScore {
            team_id: team,
            points,
            reached_at: at,
            parts: vec![],
        };
        let hint = |team, challenge: &str, cost, at| HintCost {
            challenge: challenge.to_owned(),
            team_id: team,
            cost,
            at,
        };
        let counted: HashSet<TeamId> = [1, 2, 3].into();
        // Team 1 leads 100 to 90 but paid 20 for two hints on "a": 80 < 90.
        // Team 3 has only a hint: -5. Team 4 does not count: its hint is ignored.
        let ranked = with_hint_costs(
            vec![score(1, 100.0, 10), score(2, 90.0, 20)],
            &[
                hint(1, "a", 15, 30),
                hint(1, "a", 5, 31),
                hint(3, "b", 5, 40),
                hint(4, "a", 50, 41),
            ],
            &counted,
        );
        let points: Vec<(TeamId, f64)> = ranked.iter().map(|s| (s.team_id, s.points)).collect();
        assert_eq!(points, [(2, 90.0), (1, 80.0), (3, -5.0)]);
        let one = &ranked[1];
        assert_eq!(one.parts.len(), 1, "one part per challenge");
        assert_eq!(
            (one.parts[0].kind, one.parts[0].points, one.parts[0].score),
            (PartKind::Hint, -20.0, 20.0)
        );
        assert_eq!(
            one.reached_at, 10,
            "a hint does not move a scoring team's time"
        );
        assert_eq!(ranked[2].reached_at, 40);
        // No hints: unchanged.
        assert_eq!(
            with_hint_costs(vec![score(1, 1.0, 1)], &[], &counted),
            vec![score(1, 1.0, 1)]
        );
    }
}
