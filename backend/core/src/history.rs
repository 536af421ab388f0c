//! The event scoreboard at any moment, and each team's score over time.
//!
//! [`scoreboard`] ranks the event now; [`history`] replays every result in time
//! order and records, for each counted team, the steps at which its event score
//! changed. Both are pure: the web crate gathers the rows (`track_standings`,
//! cells, solves) and draws the chart.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::challenge::RankBy;
use crate::leaderboard::{self, EventScore, FlagStanding, Fooled, TrackStanding};
use crate::store::{Evaluation, Party, Split, Submission, TeamId, Track};

/// One track of one challenge as the scoreboard counts it.
#[derive(Debug, Clone)]
pub struct TrackBoard {
    pub challenge: String,
    pub track: Track,
    /// The challenge's `points`: what the track's leader earns.
    pub points: u32,
    /// The split shown now (public while the track is open).
    pub split: Split,
    /// How the board ranks (the challenge's `rank_by`; only defense boards use it).
    pub rule: RankBy,
    /// The track's scored submissions.
    pub scored: Vec<Submission>,
    /// Every cell of the challenge's matrix (both tracks share them).
    pub cells: Arc<[Evaluation]>,
}

/// The event scoreboard (`leaderboard::event_scores`): each track ranked by
/// `leaderboard::rank` on its shown split (the chosen, else the best, submission),
/// worth `points * score / best`; each counted flag solve worth the flag's
/// current value. Only `counted` teams are listed or taken as the best.
pub fn scoreboard(
    boards: &[TrackBoard],
    flags: &[FlagStanding],
    counted: &HashSet<TeamId>,
) -> Vec<EventScore> {
    let tracks: Vec<TrackStanding> = boards
        .iter()
        .map(|b| TrackStanding {
            challenge: b.challenge.clone(),
            track: b.track,
            points: b.points,
            standings: leaderboard::rank(b.track, b.split, b.rule, &b.scored, &b.cells),
        })
        .collect();
    leaderboard::event_scores(&tracks, flags, counted)
}

/// The boards and flags as they stood at `t`: the submissions scored by `t`
/// (their [`scored_at`]), the cells written by `t` and the solves made by `t`.
/// A frozen scoreboard is [`scoreboard`] of these; it equals [`history`]'s
/// value at `t` for every team (tested on every prefix). Tracks of one challenge
/// keep sharing one cell list.
pub fn as_of(
    boards: &[TrackBoard],
    flags: &[FlagStanding],
    t: i64,
) -> (Vec<TrackBoard>, Vec<FlagStanding>) {
    let mut shared: Vec<(*const Evaluation, Arc<[Evaluation]>)> = Vec::new();
    let boards = boards
        .iter()
        .map(|b| {
            let source = b.cells.as_ptr();
            let cells = match shared.iter().find(|(p, _)| *p == source) {
                Some((_, cut)) => cut.clone(),
                None => {
                    let cut: Arc<[Evaluation]> = b
                        .cells
                        .iter()
                        .filter(|c| c.created_at <= t)
                        .cloned()
                        .collect::<Vec<_>>()
                        .into();
                    shared.push((source, cut.clone()));
                    cut
                }
            };
            TrackBoard {
                challenge: b.challenge.clone(),
                track: b.track,
                points: b.points,
                split: b.split,
                rule: b.rule,
                scored: b
                    .scored
                    .iter()
                    .filter(|s| scored_at(s) <= t)
                    .cloned()
                    .collect(),
                cells,
            }
        })
        .collect();
    let flags = flags
        .iter()
        .map(|f| FlagStanding {
            challenge: f.challenge.clone(),
            flag: f.flag.clone(),
            solvers: f.solvers.iter().filter(|s| s.1 <= t).copied().collect(),
        })
        .collect();
    (boards, flags)
}

/// Each team's score-over-time steps with hint costs taken off (as
/// [`crate::leaderboard::with_hint_costs`] takes them off the scoreboard): at
/// every step and every unlock, the score is the steps' value then minus every
/// cost paid by then. A counted team with unlocks and no other step gets steps
/// at its unlocks.
pub fn with_hint_steps(
    history: BTreeMap<TeamId, Vec<(i64, f64)>>,
    hints: &[crate::leaderboard::HintCost],
    counted: &HashSet<TeamId>,
) -> BTreeMap<TeamId, Vec<(i64, f64)>> {
    let mut unlocks: BTreeMap<TeamId, Vec<(i64, u64)>> = BTreeMap::new();
    for h in hints.iter().filter(|h| counted.contains(&h.team_id)) {
        unlocks.entry(h.team_id).or_default().push((h.at, h.cost));
    }
    let mut out = history;
    for (team, mut paid) in unlocks {
        paid.sort_unstable();
        let steps = out.remove(&team).unwrap_or_default();
        let mut times: Vec<i64> = steps
            .iter()
            .map(|s| s.0)
            .chain(paid.iter().map(|p| p.0))
            .collect();
        times.sort_unstable();
        times.dedup();
        // One pass over both (each sorted by time): the step in effect and the
        // costs paid so far advance with `t`.
        let (mut next_step, mut next_paid) = (0, 0);
        let (mut base, mut cost) = (0.0, 0u64);
        let mut merged: Vec<(i64, f64)> = Vec::with_capacity(times.len());
        for t in times {
            while next_step < steps.len() && steps[next_step].0 <= t {
                base = steps[next_step].1;
                next_step += 1;
            }
            while next_paid < paid.len() && paid[next_paid].0 <= t {
                cost += paid[next_paid].1;
                next_paid += 1;
            }
            let value = base - cost as f64;
            if merged.last().is_none_or(|&(_, last)| last != value) {
                merged.push((t, value));
            }
        }
        out.insert(team, merged);
    }
    out
}

/// When a submission joined the leaderboards.
pub fn scored_at(s: &Submission) -> i64 {
    s.finished_at.unwrap_or(s.created_at)
}

/// Each counted team's event score over time, as the steps `(t, points)` at which
/// it changed.
///
/// The score at time `t` is the [`scoreboard`] computed as if only the
/// submissions scored at or before `t` (their `finished_at`, the moment they
/// joined the leaderboards; their own cells are written at that same moment), the
/// matrix cells created at or before `t` and the solves made at or before `t`
/// existed, on the split each track shows *now*. A submission's track score at `t`
/// is the sum of its shares (fooled for an attack, kept for a defense) over those
/// cells; the team counts its chosen submission once that is scored, else its best
/// one scored by `t`. So the last step equals today's total (up to floating-point
/// rounding). Another team's progress can lower a team's points (a new best
/// divides everyone's track score), and so can a new solve (the flag's value
/// decays). A team gets a first step `(t, 0.0)` when it first enters (a scored
/// submission or a solve).
pub fn history(
    boards: &[TrackBoard],
    flags: &[FlagStanding],
    counted: &HashSet<TeamId>,
) -> BTreeMap<TeamId, Vec<(i64, f64)>> {
    let events = events(boards, flags, counted);
    let mut replay = Replay::new(boards, flags);
    let mut out: BTreeMap<TeamId, Vec<(i64, f64)>> = BTreeMap::new();
    for batch in events.chunk_by(|a, b| a.0 == b.0) {
        let t = batch[0].0;
        // Whose total may have moved at `t`: only they are summed again (the
        // same sum, in the same order, as summing everyone).
        let dirty = replay.apply(t, batch.iter().map(|(_, e)| e));
        for team in dirty.into_iter().filter(|team| replay.teams.contains(team)) {
            let total = replay.total(team, t);
            let steps = out.entry(team).or_default();
            if steps.last().is_none_or(|&(_, last)| last != total) {
                steps.push((t, total));
            }
        }
    }
    out
}

/// Something that happened to the boards at one moment.
enum Event {
    /// A submission was scored: it joins its leaderboard.
    Enter { board: usize, submission: usize },
    /// A cell added its share to a submission's track score.
    Add {
        board: usize,
        submission: usize,
        share: f64,
    },
    /// A cell joined a defense's per-example results on a board ranked by the
    /// worst case (which an attack can lower).
    Cut {
        board: usize,
        submission: usize,
        cell: usize,
    },
    /// A counted team solved a flag.
    Solve { team: TeamId },
}

/// Every counted team's events, in time order.
fn events(
    boards: &[TrackBoard],
    flags: &[FlagStanding],
    counted: &HashSet<TeamId>,
) -> Vec<(i64, Event)> {
    let mut events: Vec<(i64, Event)> = Vec::new();
    for (b, board) in boards.iter().enumerate() {
        let index: HashMap<i64, usize> = board
            .scored
            .iter()
            .enumerate()
            .filter(|(_, s)| counted.contains(&s.team_id))
            .map(|(k, s)| (s.id, k))
            .collect();
        for &k in index.values() {
            let enter = Event::Enter {
                board: b,
                submission: k,
            };
            events.push((scored_at(&board.scored[k]), enter));
        }
        let worst_case = worst_case_board(board);
        for (c, cell) in board
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.split == board.split && c.total > 0)
        {
            let (party, hits) = match board.track {
                Track::Attack => (&cell.attacker, cell.fooled),
                Track::Defense => (&cell.defender, cell.total - cell.fooled),
            };
            if let Party::Submission(id) = party
                && let Some(&k) = index.get(id)
            {
                let event = if worst_case {
                    Event::Cut {
                        board: b,
                        submission: k,
                        cell: c,
                    }
                } else {
                    Event::Add {
                        board: b,
                        submission: k,
                        share: hits as f64 / cell.total as f64,
                    }
                };
                events.push((cell.created_at, event));
            }
        }
    }
    for flag in flags {
        for &(team, at) in flag.solvers.iter().filter(|(t, _)| counted.contains(t)) {
            events.push((at, Event::Solve { team }));
        }
    }
    events.sort_by_key(|(t, _)| *t);
    events
}

/// Whether a board ranks by the worst case (a defense board under that rule).
fn worst_case_board(board: &TrackBoard) -> bool {
    board.track == Track::Defense && board.rule == RankBy::WorstCase
}

/// The replay's state: every submission's running sum, each team's counted score
/// and each board's best, each flag's solves so far.
struct Replay<'a> {
    boards: &'a [TrackBoard],
    flags: &'a [FlagStanding],
    sums: Vec<Vec<f64>>,
    /// Worst-case boards: each submission's per-example results so far.
    fooled: Vec<Vec<Fooled>>,
    /// (board, team) -> the team's submissions on that board.
    team_subs: HashMap<(usize, TeamId), Vec<usize>>,
    entered: Vec<Vec<bool>>,
    /// (board, team) -> the team's best entered submission's sum on that board.
    best: HashMap<(usize, TeamId), f64>,
    /// (board, team) -> the submission the team chose there.
    chosen: HashMap<(usize, TeamId), usize>,
    /// Each board's counted score per team now, and its best.
    scores: Vec<HashMap<TeamId, f64>>,
    tops: Vec<f64>,
    /// Each flag's solve times (sorted), and each team's solves by flag.
    solve_times: Vec<Vec<i64>>,
    solved: HashMap<TeamId, Vec<(usize, i64)>>,
    solves_so_far: Vec<usize>,
    /// Teams that have entered.
    teams: BTreeSet<TeamId>,
}

impl<'a> Replay<'a> {
    fn new(boards: &'a [TrackBoard], flags: &'a [FlagStanding]) -> Self {
        let chosen = boards
            .iter()
            .enumerate()
            .flat_map(|(b, board)| {
                board
                    .scored
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.chosen)
                    .map(move |(k, s)| ((b, s.team_id), k))
            })
            .collect();
        let solve_times = flags
            .iter()
            .map(|f| {
                let mut times: Vec<i64> = f.solvers.iter().map(|&(_, at)| at).collect();
                times.sort_unstable();
                times
            })
            .collect();
        let mut solved: HashMap<TeamId, Vec<(usize, i64)>> = HashMap::new();
        for (f, flag) in flags.iter().enumerate() {
            for &(team, at) in &flag.solvers {
                solved.entry(team).or_default().push((f, at));
            }
        }
        let mut team_subs: HashMap<(usize, TeamId), Vec<usize>> = HashMap::new();
        for (b, board) in boards.iter().enumerate() {
            for (k, s) in board.scored.iter().enumerate() {
                team_subs.entry((b, s.team_id)).or_default().push(k);
            }
        }
        Self {
            boards,
            flags,
            sums: boards.iter().map(|b| vec![0.0; b.scored.len()]).collect(),
            fooled: boards
                .iter()
                .map(|b| vec![Fooled::default(); b.scored.len()])
                .collect(),
            team_subs,
            entered: boards.iter().map(|b| vec![false; b.scored.len()]).collect(),
            best: HashMap::new(),
            chosen,
            scores: vec![HashMap::new(); boards.len()],
            tops: vec![0.0; boards.len()],
            solve_times,
            solved,
            solves_so_far: vec![0; flags.len()],
            teams: BTreeSet::new(),
        }
    }

    /// Apply the events of moment `t`; returns the teams whose total may have moved.
    fn apply<'e>(&mut self, t: i64, batch: impl Iterator<Item = &'e Event>) -> BTreeSet<TeamId> {
        let mut dirty: BTreeSet<TeamId> = BTreeSet::new();
        let mut touched: BTreeSet<(usize, TeamId)> = BTreeSet::new();
        for event in batch {
            match *event {
                Event::Enter { board, submission } => {
                    self.entered[board][submission] = true;
                    let team = self.boards[board].scored[submission].team_id;
                    self.raise_best(board, submission, team);
                    touched.insert((board, team));
                    if self.teams.insert(team) {
                        dirty.insert(team);
                    }
                }
                Event::Add {
                    board,
                    submission,
                    share,
                } => {
                    self.sums[board][submission] += share;
                    let team = self.boards[board].scored[submission].team_id;
                    if self.entered[board][submission] {
                        self.raise_best(board, submission, team);
                    }
                    touched.insert((board, team));
                }
                Event::Cut {
                    board,
                    submission,
                    cell,
                } => {
                    let fooled = &mut self.fooled[board][submission];
                    fooled.add(&self.boards[board].cells[cell]);
                    self.sums[board][submission] = fooled.worst_case().unwrap_or(0.0);
                    let team = self.boards[board].scored[submission].team_id;
                    self.raise_best(board, submission, team);
                    touched.insert((board, team));
                }
                Event::Solve { team } => {
                    if self.teams.insert(team) {
                        dirty.insert(team);
                    }
                }
            }
        }
        self.rescore(touched, &mut dirty);
        self.decay_flags(t, &mut dirty);
        dirty
    }

    /// The team's best entered score on `board` after `submission`'s moved. A
    /// sum only grows, so the best is raised; a worst case can fall, so it is
    /// taken again over the team's entered submissions.
    fn raise_best(&mut self, board: usize, submission: usize, team: TeamId) {
        if worst_case_board(&self.boards[board]) {
            let best = self
                .team_subs
                .get(&(board, team))
                .into_iter()
                .flatten()
                .filter(|&&k| self.entered[board][k])
                .map(|&k| self.sums[board][k])
                .fold(None, |best: Option<f64>, v| {
                    Some(best.map_or(v, |b| b.max(v)))
                });
            match best {
                Some(best) => {
                    self.best.insert((board, team), best);
                }
                None => {
                    self.best.remove(&(board, team));
                }
            }
            return;
        }
        let slot = self.best.entry((board, team)).or_insert(0.0);
        *slot = slot.max(self.sums[board][submission]);
    }

    /// The touched teams' counted scores; a new best on a board moves everyone's
    /// points there.
    fn rescore(&mut self, touched: BTreeSet<(usize, TeamId)>, dirty: &mut BTreeSet<TeamId>) {
        let mut moved_boards: BTreeSet<usize> = BTreeSet::new();
        for (b, team) in touched {
            if let Some(score) = self.counted_score(b, team)
                && self.scores[b].insert(team, score) != Some(score)
            {
                dirty.insert(team);
                moved_boards.insert(b);
            }
        }
        for b in moved_boards {
            let top = self.scores[b].values().copied().fold(0.0, f64::max);
            if top != self.tops[b] {
                self.tops[b] = top;
                dirty.extend(self.scores[b].keys().copied());
            }
        }
    }

    /// The team's chosen submission once it has entered, else its best.
    fn counted_score(&self, b: usize, team: TeamId) -> Option<f64> {
        match self.chosen.get(&(b, team)) {
            Some(&c) if self.entered[b][c] => Some(self.sums[b][c]),
            _ => self.best.get(&(b, team)).copied(),
        }
    }

    /// A solve decays the flag's value for everyone who holds it.
    fn decay_flags(&mut self, t: i64, dirty: &mut BTreeSet<TeamId>) {
        for (f, flag) in self.flags.iter().enumerate() {
            let now = self.solve_times[f].partition_point(|&at| at <= t);
            if now != self.solves_so_far[f] {
                self.solves_so_far[f] = now;
                dirty.extend(
                    flag.solvers
                        .iter()
                        .filter(|&&(_, at)| at <= t)
                        .map(|&(team, _)| team),
                );
            }
        }
    }

    /// The team's event score at `t`: its track points board by board, then its
    /// flags' current values (the scoreboard's order of summing).
    fn total(&self, team: TeamId, t: i64) -> f64 {
        let mut total = 0.0;
        for (b, board) in self.boards.iter().enumerate() {
            if let Some(&score) = self.scores[b].get(&team) {
                total += leaderboard::track_points(board.points, score, self.tops[b]);
            }
        }
        for &(f, at) in self.solved.get(&team).map_or(&[][..], Vec::as_slice) {
            if at <= t {
                let solves = u64::try_from(self.solves_so_far[f]).unwrap_or(u64::MAX);
                total += self.flags[f].flag.value_after(solves) as f64;
            }
        }
        total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{cell, example_boards as example, submission as sub};

    fn assert_steps(got: &[(i64, f64)], want: &[(i64, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0, "{got:?} vs {want:?}");
            assert!((g.1 - w.1).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    }

    fn both() -> HashSet<TeamId> {
        [1, 2].into()
    }

    /// Flag "f" (linear 500, -100 a solve, minimum 200): team 1 solves at 15,
    /// team 3 (staff, not counted) at 16, team 2 at 22.
    fn flags() -> Vec<FlagStanding> {
        let flag = crate::challenge::FlagSpec {
            sha256: String::new(),
            initial: 500,
            minimum: 200,
            decay: 100,
            function: crate::challenge::Decay::Linear,
        };
        let solve = |team, at, counted| crate::store::Solve {
            team_id: team,
            user_id: team,
            created_at: at,
            counted,
        };
        vec![FlagStanding::new(
            "f",
            &flag,
            &[solve(1, 15, true), solve(3, 16, false), solve(2, 22, true)],
        )]
    }

    #[test]
    fn history_matches_hand_computed_steps() {
        let h = history(&example(), &[], &both());
        // Track scores (sums of shares): team 1's attack is 0 at 10, 5/10 + 2/10 + 4/10
        // = 1.1 at 12 (the private and the empty cell do not count), 0.9 + 0.4 + 0.3
        // = 1.6 at 31 (#3). Team 2's defense keeps 5/20 of the reference at 6
        // (0.25), 6/10 of #1 at 12 (0.85), 7/10 of #3 at 31 (1.55); its attack #2
        // enters at 20 with 0 and scores 1 + 1 = 2 at 25.
        // Points (100 per track, points * mine / best):
        //   team 1: 0 at 10; 100 at 12 (the only attack); 100 * 1.1 / 2 = 55 at 25
        //           (team 2's attack leads); 100 * 1.6 / 2 = 80 at 31.
        //   team 2: 0 at 5; 100 at 6 (the only defense); 100 + 100 = 200 at 25.
        assert_steps(&h[&1], &[(10, 0.0), (12, 100.0), (25, 55.0), (31, 80.0)]);
        assert_steps(&h[&2], &[(5, 0.0), (6, 100.0), (25, 200.0)]);

        // Team 1 chose #1: #3 (made later, better) no longer counts.
        let mut boards = example();
        boards[0].scored[0].chosen = true;
        assert_steps(
            &history(&boards, &[], &both())[&1],
            &[(10, 0.0), (12, 100.0), (25, 55.0)],
        );
        // Team 1 chose #3 (uploaded at 30, scored at 31): #1 counts until #3 is scored.
        let mut boards = example();
        boards[0].scored[2].chosen = true;
        boards[0].scored[2].finished_at = Some(31);
        assert_steps(
            &history(&boards, &[], &both())[&1],
            &[(10, 0.0), (12, 100.0), (25, 55.0), (31, 80.0)],
        );
        // A chosen submission worse than the best so far makes the score drop.
        let mut boards = example();
        boards[0].scored.push(sub(5, 1, Track::Attack, 35));
        boards[0].scored[3].chosen = true;
        assert_steps(
            &history(&boards, &[], &both())[&1],
            &[(10, 0.0), (12, 100.0), (25, 55.0), (31, 80.0), (35, 0.0)],
        );

        // With the flag: team 1 gains 500 at 15; the staff solve at 16 changes
        // nothing; team 2's solve at 22 makes it 400 for both.
        let h = history(&example(), &flags(), &both());
        assert_steps(
            &h[&1],
            &[
                (10, 0.0),
                (12, 100.0),
                (15, 600.0),
                (22, 500.0),
                (25, 455.0),
                (31, 480.0),
            ],
        );
        assert_steps(&h[&2], &[(5, 0.0), (6, 100.0), (22, 500.0), (25, 600.0)]);
        assert!(
            !h.contains_key(&3),
            "a team that does not count has no line"
        );
    }

    #[test]
    fn history_agrees_with_the_scoreboard_on_every_prefix() {
        let plain = example();
        let mut chose_worse = example();
        chose_worse[0].scored[0].chosen = true;
        let mut chose_later = example();
        chose_later[0].scored[2].chosen = true;
        let mut scored_later = chose_later.clone();
        scored_later[0].scored[2].finished_at = Some(31);
        for boards in [plain, chose_worse, chose_later, scored_later] {
            prefixes_agree(&boards, &[]);
            prefixes_agree(&boards, &flags());
        }
    }

    #[test]
    fn a_worst_case_board_replays_falls_as_well_as_rises() {
        use crate::testing::cell_with_examples as bits;
        use crate::testing::submission;
        let pb = Split::Public;
        let (s, r) = (Party::Submission, Party::Reference("square-linf".into()));
        // Defenses #4 (team 2, t=5) and #5 (team 1, t=8); attacks #1 (team 1,
        // t=10) and #2 (team 2, t=20) break more of each over time.
        let cells: Arc<[Evaluation]> = vec![
            bits(r.clone(), s(4), pb, 10, &[0], 5),
            bits(r, s(5), pb, 10, &[0, 1, 2], 8),
            bits(s(1), s(4), pb, 10, &[1, 2, 3, 4], 10),
            bits(s(1), s(5), pb, 10, &[0], 10),
            bits(s(2), s(5), pb, 10, &[5, 6, 7, 8], 20),
            bits(s(2), s(4), pb, 10, &[0, 1], 20),
        ]
        .into();
        let boards = vec![TrackBoard {
            challenge: "c".into(),
            track: Track::Defense,
            points: 100,
            split: pb,
            rule: RankBy::WorstCase,
            scored: vec![
                submission(4, 2, Track::Defense, 5),
                submission(5, 1, Track::Defense, 8),
            ],
            cells,
        }];
        prefixes_agree(&boards, &[]);
        let h = history(&boards, &[], &both());
        // Team 2: 0.9 at 5 (alone: 100 points), team 1 enters at 8 with 0.7 (team 2
        // still leads); at 10 #4 falls to 0.5 and #5 stays 0.7: team 1 leads; at 20
        // #5 falls to 0.3 and #4 stays 0.5: team 2 leads again.
        assert_eq!(h[&2].first(), Some(&(5, 100.0)));
        let at = |team: TeamId, t: i64| h[&team].iter().rev().find(|s| s.0 <= t).unwrap().1;
        assert!((at(1, 8) - 100.0 * 0.7 / 0.9).abs() < 1e-9);
        assert!((at(1, 10) - 100.0).abs() < 1e-9);
        assert!((at(2, 10) - 100.0 * 0.5 / 0.7).abs() < 1e-9);
        assert!((at(2, 20) - 100.0).abs() < 1e-9);
        assert!((at(1, 20) - 100.0 * 0.3 / 0.5).abs() < 1e-9);
    }

    fn prefixes_agree(boards: &[TrackBoard], flags: &[FlagStanding]) {
        let h = history(boards, flags, &both());
        let times: Vec<i64> = (0..=40).collect();
        for t in times {
            let (cut, cut_flags) = as_of(boards, flags, t);
            for team in scoreboard(&cut, &cut_flags, &both()) {
                let at_t = h[&team.team_id]
                    .iter()
                    .rev()
                    .find(|s| s.0 <= t)
                    .map(|s| s.1)
                    .unwrap();
                assert!(
                    (at_t - team.points).abs() < 1e-9,
                    "team {} at {t}: {at_t} vs {}",
                    team.team_id,
                    team.points
                );
            }
        }
    }

    #[test]
    fn a_frozen_board_keeps_what_was_in_by_its_moment() {
        let boards = example();
        let (cut, cut_flags) = as_of(&boards, &flags(), 20);
        // Team 1's attack #1 (scored 12) is in, #3 (scored 31) is not; team 2's
        // attack #2 (scored 20) is in with no cell yet (its cells come at 25).
        let ids = |b: &TrackBoard| b.scored.iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(&cut[0]), [1, 2]);
        assert!(cut[0].cells.iter().all(|c| c.created_at <= 20));
        assert!(
            Arc::ptr_eq(&cut[0].cells, &cut[1].cells),
            "the tracks of one challenge share the cut cells"
        );
        // solves at 15 and 16 are in, 22 is not
        assert_eq!(
            cut_flags[0].solvers.iter().map(|s| s.1).collect::<Vec<_>>(),
            [15]
        );
        // at 20: team 1 holds the attack lead (100) and the flag alone (500);
        // team 2 the defense lead (100)
        let ranked = scoreboard(&cut, &cut_flags, &both());
        let points: Vec<(TeamId, f64)> = ranked.iter().map(|t| (t.team_id, t.points)).collect();
        assert_eq!(points, [(1, 600.0), (2, 100.0)]);
        // nothing is in before the first event
        let (empty, _) = as_of(&boards, &flags(), 0);
        assert!(scoreboard(&empty, &[], &both()).is_empty());
    }

    #[test]
    fn scoreboard_weighs_tracks_by_points_and_breaks_ties_by_time() {
        let ranked = scoreboard(&example(), &[], &both());
        assert_eq!(ranked.iter().map(|t| t.team_id).collect::<Vec<_>>(), [2, 1]);
        // team 2 leads both tracks: 100 + 100; team 1: 100 * 1.6 / 2.0
        assert!((ranked[0].points - 200.0).abs() < 1e-9);
        assert!((ranked[1].points - 80.0).abs() < 1e-9);
        assert_eq!(ranked[0].reached_at, 20, "the later of #2 (20) and #4 (5)");
        assert_eq!(ranked[0].parts.len(), 2);
        assert_eq!(ranked[1].parts[0].submission, Some(3));
        // a team that does not count is left out, and the best is taken without it
        let only_one: HashSet<TeamId> = [1].into();
        let ranked = scoreboard(&example(), &[], &only_one);
        assert_eq!(ranked.len(), 1);
        assert!((ranked[0].points - 100.0).abs() < 1e-9, "team 1 now leads");

        // equal totals: the team whose counted submission came first wins
        let cells: Arc<[Evaluation]> = vec![
            cell(
                Party::Submission(1),
                Party::Organizer("m".into()),
                Split::Public,
                10,
                5,
                100,
            ),
            cell(
                Party::Submission(2),
                Party::Organizer("m".into()),
                Split::Public,
                10,
                5,
                50,
            ),
        ]
        .into();
        let tie = [TrackBoard {
            challenge: "c".into(),
            track: Track::Attack,
            points: 10,
            split: Split::Public,
            rule: RankBy::Sum,
            scored: vec![sub(1, 7, Track::Attack, 40), sub(2, 9, Track::Attack, 45)],
            cells,
        }];
        assert_eq!(
            scoreboard(&tie, &[], &[7, 9].into())
                .iter()
                .map(|t| t.team_id)
                .collect::<Vec<_>>(),
            [7, 9]
        );
    }

    #[test]
    fn hint_costs_step_the_history_down() {
        use crate::leaderboard::HintCost;
        let hint = |team, cost, at| HintCost {
            challenge: "f".into(),
            team_id: team,
            cost,
            at,
        };
        let history: BTreeMap<TeamId, Vec<(i64, f64)>> = [(1, vec![(10, 0.0), (12, 100.0)])].into();
        let out = with_hint_steps(
            history,
            &[
                hint(1, 30, 11),
                hint(1, 20, 15),
                hint(2, 5, 20),
                hint(9, 7, 1),
            ],
            &[1, 2].into(),
        );
        // team 1: 0 at 10, -30 at 11, 70 at 12, 50 at 15; team 2: -5 at 20
        assert_eq!(out[&1], [(10, 0.0), (11, -30.0), (12, 70.0), (15, 50.0)]);
        assert_eq!(out[&2], [(20, -5.0)]);
        assert!(!out.contains_key(&9), "a team that does not count");
        // its last step equals the scoreboard's total with the costs off
        let board = crate::leaderboard::with_hint_costs(
            vec![crate::leaderboard::EventScore {
                team_id: 1,
                points: 100.0,
                reached_at: 12,
                parts: vec![],
            }],
            &[hint(1, 30, 11), hint(1, 20, 15)],
            &[1].into(),
        );
        assert_eq!(board[0].points, out[&1].last().unwrap().1);
    }
}
