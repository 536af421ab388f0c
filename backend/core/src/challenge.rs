//! Challenge bundles: `challenge.toml` + `README.md` + `public/` + `private/`.
//!
//! [`Bundle::load`] reads a bundle folder and checks every field, collecting all
//! problems (file, field, line where the TOML parser knows it) instead of
//! stopping at the first, so `riposte challenge check` can print them together.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::kinds::membership::MembershipSpec;
use crate::kinds::membership::{self, RawMembership};
pub use crate::kinds::poisoning::PoisoningSpec;
use crate::kinds::poisoning::{self, RawPoisoning};
use crate::task::{Dtype, Norm, TaskSpec, ThreatModel};

/// A challenge's URL name: 2-64 of `a-z`, `0-9`, `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ChallengeSlug(String);

impl ChallengeSlug {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_len = (2..=64).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_start = raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if ok_len && ok_chars && ok_start && !raw.ends_with('-') {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a valid slug: expected 2-64 characters of a-z, 0-9 and '-', starting with a letter"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ChallengeSlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The threat family a challenge teaches and scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    Evasion,
    Extraction,
    Membership,
    Secret,
    Poisoning,
}

impl std::fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ChallengeKind {
    pub const ALL: [ChallengeKind; 5] = [
        ChallengeKind::Evasion,
        ChallengeKind::Extraction,
        ChallengeKind::Membership,
        ChallengeKind::Secret,
        ChallengeKind::Poisoning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Evasion => "evasion",
            ChallengeKind::Extraction => "extraction",
            ChallengeKind::Membership => "membership",
            ChallengeKind::Secret => "secret",
            ChallengeKind::Poisoning => "poisoning",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard];

    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == raw)
    }
}

/// An organizer model attacked by every attack. Under `public/` it is white-box
/// (downloadable); under `private/` it is reachable only through queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// Path relative to the bundle folder.
    pub model: PathBuf,
}

impl Target {
    pub fn is_white_box(&self) -> bool {
        self.model.starts_with("public")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    pub inputs: PathBuf,
    pub labels: PathBuf,
    /// Share of eval examples on the public leaderboard; the rest decides the private one.
    pub public_fraction: f64,
    pub split_seed: u64,
    /// Targeted challenges: the class each eval input must be turned into, one per
    /// input in order. An attack succeeds on an example when the defender predicts
    /// its target; untargeted, when it predicts anything but the true label.
    #[serde(default)]
    pub target_labels: Option<Vec<usize>>,
}

/// When a track accepts submissions and how many. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub opens: i64,
    pub closes: i64,
    pub submissions_per_day: u32,
    pub max_upload_bytes: u64,
}

impl Track {
    pub fn is_open_at(&self, now: i64) -> bool {
        self.opens <= now && now < self.closes
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefenseTrack {
    pub window: Track,
    pub gate_clean_accuracy: f64,
    pub hidden_inputs: PathBuf,
    pub hidden_labels: PathBuf,
    pub reference_attacks: Vec<String>,
    /// How the defense board ranks. Specs stored before the rule existed read as
    /// [`RankBy::Sum`], so their boards keep their numbers; a bundle that does not
    /// say gets [`RankBy::WorstCase`].
    #[serde(default = "RankBy::stored_default")]
    pub rank_by: RankBy,
    /// Queries per example of the background battery (Square Attack on every eval
    /// example after a defense is accepted); 0 runs none. Specs stored before the
    /// battery existed read as 0.
    #[serde(default)]
    pub battery_queries: u32,
}

/// The rule that ranks a defense board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Worst-case robust accuracy (RobustBench, AutoAttack): the share of the
    /// split's examples the defense gets right under every attack it faced.
    WorstCase,
    /// The NIPS 2017 rule: the sum over attacks of the share of examples the
    /// defense kept.
    Sum,
}

impl RankBy {
    pub const DEFAULT_BATTERY_QUERIES: u32 = 1000;

    fn stored_default() -> Self {
        Self::Sum
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorstCase => "worst_case",
            Self::Sum => "sum",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "worst_case" => Some(Self::WorstCase),
            "sum" => Some(Self::Sum),
            _ => None,
        }
    }

    /// What the board calls the score it ranks by.
    pub fn describe(self) -> &'static str {
        match self {
            Self::WorstCase => "worst-case robust accuracy (correct under every attack)",
            Self::Sum => "the sum over attacks of the share of examples kept",
        }
    }
}

/// Everything the platform needs to host and score one challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeSpec {
    pub slug: String,
    pub title: String,
    pub kind: ChallengeKind,
    pub difficulty: Difficulty,
    pub tags: Vec<String>,
    pub points: u32,
    pub summary: String,
    /// Where the challenge sits on its family's learning path (lower first).
    #[serde(default = "default_order")]
    pub order: i64,
    /// Challenges (slugs) the learning path puts before this one.
    #[serde(default)]
    pub requires: Vec<String>,
    pub task: Option<TaskSpec>,
    pub threat: ThreatModel,
    pub targets: Vec<Target>,
    pub eval: Option<EvalSet>,
    pub attack: Option<Track>,
    pub defense: Option<DefenseTrack>,
    #[serde(default)]
    pub flag: Option<FlagSpec>,
    #[serde(default)]
    pub query: Option<QuerySpec>,
    #[serde(default)]
    pub membership: Option<MembershipSpec>,
    #[serde(default)]
    pub poisoning: Option<PoisoningSpec>,
    /// Hints a team may unlock for a cost (CTFd's), ids 1, 2, ... in order.
    #[serde(default)]
    pub hints: Vec<HintSpec>,
    /// The organizers' write-up (`solution/README.md`, markdown), published
    /// when the challenge's results are ([`crate::visibility::writeups_published`]).
    #[serde(default)]
    pub solution: Option<String>,
    #[serde(default)]
    pub completion: Option<CompletionSpec>,
}

impl ChallengeSpec {
    /// Whether scores made under `self` may differ under `new`: the task, threat
    /// model, targets, eval set, the defense's gate and hidden set, the
    /// reference attacks and the kind's own section, or any file the scorer
    /// reads (`artifacts_changed`). The catalog (title, summary, tags, points,
    /// difficulty), the windows and limits, the flag and the query budget do not
    /// change a score already made. An organizer who changes what scores is
    /// offered a rescore.
    pub fn scoring_differs(&self, new: &ChallengeSpec, artifacts_changed: bool) -> bool {
        let defense = |s: &ChallengeSpec| {
            s.defense.as_ref().map(|d| {
                (
                    d.gate_clean_accuracy.to_bits(),
                    d.hidden_inputs.clone(),
                    d.hidden_labels.clone(),
                    d.reference_attacks.clone(),
                    d.rank_by,
                    d.battery_queries,
                )
            })
        };
        artifacts_changed
            || self.kind != new.kind
            || self.task != new.task
            || self.threat != new.threat
            || self.targets != new.targets
            || self.eval != new.eval
            || defense(self) != defense(new)
            || self.membership != new.membership
            || self.poisoning != new.poisoning
            || self.completion != new.completion
    }
}

impl ChallengeSpec {
    /// Every bundle file the platform keeps for this challenge (in the blob
    /// store, as its [`crate::artifacts::Artifacts`]): target models, the eval
    /// set, the defense's hidden set, and the sections of its kind.
    pub fn artifact_paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = self.targets.iter().map(|t| t.model.as_path()).collect();
        if let Some(eval) = &self.eval {
            paths.extend([eval.inputs.as_path(), eval.labels.as_path()]);
        }
        if let Some(defense) = &self.defense {
            paths.extend([
                defense.hidden_inputs.as_path(),
                defense.hidden_labels.as_path(),
            ]);
        }
        if let Some(membership) = &self.membership {
            paths.extend(membership.paths());
        }
        if let Some(poisoning) = &self.poisoning {
            paths.extend(poisoning.paths());
        }
        paths
    }

    /// A challenge with no sections, no tracks and no files: what a test or a
    /// benchmark stores when it needs a challenge row but no bundle on disk. (The
    /// bundle loader never returns one: every kind needs some section.)
    pub fn bare(slug: &str, kind: ChallengeKind) -> Self {
        Self {
            slug: slug.to_owned(),
            title: slug.to_owned(),
            kind,
            difficulty: Difficulty::Easy,
            tags: vec![],
            points: 100,
            summary: String::new(),
            order: default_order(),
            requires: vec![],
            task: None,
            threat: ThreatModel {
                norm: None,
                epsilon: None,
                targeted: false,
            },
            targets: vec![],
            eval: None,
            attack: None,
            defense: None,
            flag: None,
            query: None,
            membership: None,
            poisoning: None,
            hints: vec![],
            solution: None,
            completion: None,
        }
    }
}

/// One hint: markdown shown once a team unlocks it, for `cost` points off its
/// event score, optionally only after hint `requires` (an earlier id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HintSpec {
    pub text: String,
    pub cost: u32,
    #[serde(default)]
    pub requires: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHint {
    text: String,
    #[serde(default)]
    cost: i64,
    requires: Option<i64>,
}

/// The longest hint, in characters, and the most hints a challenge has.
const HINT_MAX_CHARS: usize = 4_000;
const MAX_HINTS: usize = 20;

fn check_hints(check: &mut Checker<'_>, raw: Vec<RawHint>) -> Vec<HintSpec> {
    if raw.len() > MAX_HINTS {
        check.problem("hints", format!("{} hints: at most {MAX_HINTS}", raw.len()));
    }
    let mut hints = Vec::new();
    for (i, h) in raw.into_iter().enumerate() {
        let id = i + 1;
        let chars = h.text.trim().chars().count();
        if chars == 0 || chars > HINT_MAX_CHARS {
            check.problem(
                &format!("hints[{i}].text"),
                format!("must be 1 to {HINT_MAX_CHARS} characters (it has {chars})"),
            );
        }
        if !(0..=100_000).contains(&h.cost) {
            check.problem(
                &format!("hints[{i}].cost"),
                format!("{} is out of range: expected 0 to 100000 points", h.cost),
            );
        }
        let requires = match h.requires {
            Some(r) if r < 1 || r as usize >= id => {
                check.problem(
                    &format!("hints[{i}].requires"),
                    format!("{r} is not an earlier hint: expected 1 to {}", id - 1),
                );
                None
            }
            Some(r) => Some(r as usize),
            None => None,
        };
        hints.push(HintSpec {
            text: h.text.trim().to_owned(),
            cost: u32::try_from(h.cost.clamp(0, 100_000)).unwrap_or(0),
            requires,
        });
    }
    hints
}

/// A text model served by greedy completion: the task's input is the last
/// `context` character ids (left-padded with id 0), its classes the next character.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionSpec {
    /// Character `i` of this string has id `i`; id 0 pads and never appears in text.
    pub vocab: String,
    /// Characters generated per query at most.
    pub max_chars: usize,
}

impl CompletionSpec {
    /// Character ids of `text`, or the characters the vocabulary lacks.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, String> {
        let mut ids = Vec::with_capacity(text.len());
        let mut missing = Vec::new();
        for ch in text.chars() {
            match self.vocab.chars().skip(1).position(|v| v == ch) {
                Some(i) => ids.push(i + 1),
                None if !missing.contains(&ch) => missing.push(ch),
                None => {}
            }
        }
        if missing.is_empty() {
            Ok(ids)
        } else {
            Err(missing.into_iter().collect())
        }
    }

    pub fn char_of(&self, id: usize) -> Option<char> {
        self.vocab.chars().nth(id)
    }
}

/// What the black-box query API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// The predicted class only.
    Label,
    /// The predicted class and its probability.
    Top1,
    /// Every class probability.
    Probabilities,
    /// Text: the model's greedy continuation of a prompt (see [`CompletionSpec`]).
    Completion,
}

/// The black-box query API of a challenge (Crucible / MLSEC style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySpec {
    /// Organizer targets reachable by query, by name.
    pub targets: Vec<String>,
    /// Whether other teams' accepted defenses may be queried (never your own).
    pub defenses: bool,
    pub output: OutputMode,
    /// Probabilities are rounded to this many decimals.
    pub decimals: u32,
    /// Queries (examples) per team and target.
    pub budget: u64,
    /// Examples per request at most.
    pub max_batch: usize,
}

/// How a flag's value decays with solves (CTFd's dynamic challenges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Logarithmic,
    Linear,
}

/// A challenge solved by submitting a secret. Only the flag's sha256 is kept:
/// the plaintext is never in the bundle, the database or a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagSpec {
    /// Lowercase hex sha256 of the exact flag text.
    pub sha256: String,
    pub initial: u64,
    pub minimum: u64,
    /// Logarithmic: solves until the value reaches the minimum; linear: points lost per solve.
    pub decay: u64,
    pub function: Decay,
}

impl FlagSpec {
    /// The value after `solves` teams have solved it (the first solver gets `initial`).
    pub fn value_after(&self, solves: u64) -> u64 {
        let previous = solves.saturating_sub(1);
        let value = match self.function {
            Decay::Logarithmic => crate::scoring::ctfd_logarithmic_value(
                self.initial,
                self.minimum,
                self.decay,
                previous,
            ),
            Decay::Linear => {
                crate::scoring::ctfd_linear_value(self.initial, self.minimum, self.decay, previous)
            }
        };
        value.unwrap_or(self.minimum)
    }
}

/// One problem found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// Dotted TOML path (`threat.epsilon`), empty for whole-file problems.
    pub field: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the problems of a bundle that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the bundle: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct BundleProblems(pub Vec<Problem>);

/// A downloadable file of a bundle (under `public/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicFile {
    /// Path relative to `public/`, with `/` separators.
    pub name: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub path: PathBuf,
}

/// A checked bundle folder.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: ChallengeSpec,
    pub readme: String,
    pub public_files: Vec<PublicFile>,
}

const README_MAX_BYTES: u64 = 1 << 20;
const PUBLIC_MAX_FILES: usize = 200;
const PUBLIC_FILE_MAX_BYTES: u64 = 512 << 20;
const TOML_MAX_BYTES: u64 = 256 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    slug: String,
    title: String,
    kind: String,
    difficulty: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_points")]
    points: u32,
    #[serde(default)]
    summary: String,
    #[serde(default = "default_order")]
    order: i64,
    #[serde(default)]
    requires: Vec<String>,
    task: Option<RawTask>,
    #[serde(default)]
    threat: RawThreat,
    #[serde(default)]
    targets: Vec<RawTarget>,
    eval: Option<RawEval>,
    #[serde(default)]
    tracks: RawTracks,
    flag: Option<RawFlag>,
    query: Option<RawQuery>,
    membership: Option<RawMembership>,
    poisoning: Option<RawPoisoning>,
    #[serde(default)]
    hints: Vec<RawHint>,
    completion: Option<RawCompletion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompletion {
    vocab: String,
    #[serde(default = "default_max_chars")]
    max_chars: i64,
}

fn default_max_chars() -> i64 {
    64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    targets: Option<Vec<String>>,
    #[serde(default)]
    defenses: bool,
    output: Option<String>,
    decimals: Option<i64>,
    budget: i64,
    max_batch: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlag {
    sha256: String,
    initial: Option<i64>,
    minimum: Option<i64>,
    decay: Option<i64>,
    function: Option<String>,
}

fn default_points() -> u32 {
    100
}

/// A challenge without an `order` comes after those that have one.
pub fn default_order() -> i64 {
    1_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    input_shape: Vec<i64>,
    dtype: String,
    value_range: [f64; 2],
    classes: i64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawThreat {
    norm: Option<String>,
    epsilon: Option<f64>,
    #[serde(default)]
    targeted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    model: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEval {
    inputs: String,
    labels: String,
    #[serde(default = "default_public_fraction")]
    public_fraction: f64,
    #[serde(default)]
    split_seed: u64,
    target_labels: Option<Vec<i64>>,
}

fn default_public_fraction() -> f64 {
    0.3
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTracks {
    attack: Option<RawTrack>,
    defense: Option<RawTrack>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrack {
    opens: toml::value::Datetime,
    closes: toml::value::Datetime,
    #[serde(default = "default_per_day")]
    submissions_per_day: i64,
    #[serde(default = "default_upload_mb")]
    max_upload_mb: i64,
    gate_clean_accuracy: Option<f64>,
    hidden_inputs: Option<String>,
    hidden_labels: Option<String>,
    reference_attacks: Option<Vec<String>>,
    rank_by: Option<String>,
    battery_queries: Option<u32>,
}

fn default_per_day() -> i64 {
    20
}

fn default_upload_mb() -> i64 {
    16
}

/// Reference attacks the evaluator knows.
pub const REFERENCE_ATTACKS: [&str; 1] = ["square-linf"];
/// Most queries per example a bundle may give the background battery.
pub const MAX_BATTERY_QUERIES: u32 = 10_000;

/// Collects a bundle's problems while its sections are checked.
pub(crate) struct Checker<'a> {
    dir: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(crate) fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: "challenge.toml".to_owned(),
            field: field.to_owned(),
            line: None,
            message: message.into(),
        });
    }

    /// A path inside the bundle, under `public/` or `private/`, that exists as a file.
    pub(crate) fn bundle_file(&mut self, field: &str, raw: &str) -> PathBuf {
        let rel = PathBuf::from(raw);
        let inside = rel.components().all(|c| matches!(c, Component::Normal(_)));
        let top_ok = rel.starts_with("public") || rel.starts_with("private");
        if !inside || !top_ok {
            self.problem(
                field,
                format!("{raw:?} must be a relative path under public/ or private/ (no '..', no leading '/')"),
            );
            return rel;
        }
        match std::fs::symlink_metadata(self.dir.join(&rel)) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => self.problem(field, format!("{raw:?} is not a regular file")),
            Err(_) => self.problem(field, format!("{raw:?} does not exist in the bundle")),
        }
        rel
    }

    fn window(&mut self, field: &str, raw: &RawTrack) -> Option<Track> {
        let opens = self.datetime(&format!("{field}.opens"), &raw.opens);
        let closes = self.datetime(&format!("{field}.closes"), &raw.closes);
        if !(1..=100_000).contains(&raw.submissions_per_day) {
            self.problem(
                &format!("{field}.submissions_per_day"),
                format!(
                    "{} is out of range: expected 1 to 100000",
                    raw.submissions_per_day
                ),
            );
        }
        if !(1..=4096).contains(&raw.max_upload_mb) {
            self.problem(
                &format!("{field}.max_upload_mb"),
                format!("{} is out of range: expected 1 to 4096", raw.max_upload_mb),
            );
        }
        let (opens, closes) = (opens?, closes?);
        if closes <= opens {
            self.problem(&format!("{field}.closes"), "must be later than opens");
            return None;
        }
        Some(Track {
            opens,
            closes,
            submissions_per_day: u32::try_from(raw.submissions_per_day).ok()?,
            max_upload_bytes: u64::try_from(raw.max_upload_mb).ok()? << 20,
        })
    }

    fn datetime(&mut self, field: &str, raw: &toml::value::Datetime) -> Option<i64> {
        let text = raw.to_string();
        match time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339) {
            Ok(t) => Some(t.unix_timestamp()),
            Err(_) => {
                self.problem(
                    field,
                    format!("{text} needs a date, a time and an offset, like 2026-01-01T00:00:00Z"),
                );
                None
            }
        }
    }
}

impl Bundle {
    /// Read and check the bundle in `dir`.
    pub fn load(dir: &Path) -> Result<Bundle, BundleProblems> {
        let whole = |file: &str, message: String| {
            BundleProblems(vec![Problem {
                file: file.to_owned(),
                field: String::new(),
                line: None,
                message,
            }])
        };
        let toml_path = dir.join("challenge.toml");
        let text =
            read_capped(&toml_path, TOML_MAX_BYTES).map_err(|e| whole("challenge.toml", e))?;
        let raw: RawSpec = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            BundleProblems(vec![Problem {
                file: "challenge.toml".to_owned(),
                field: String::new(),
                line,
                message: e.message().to_owned(),
            }])
        })?;

        let mut check = Checker {
            dir,
            problems: Vec::new(),
        };
        let spec = check_spec(&mut check, raw);

        let readme = match read_capped(&dir.join("README.md"), README_MAX_BYTES) {
            Ok(text) => text,
            Err(e) => {
                check.problems.push(Problem {
                    file: "README.md".to_owned(),
                    field: String::new(),
                    line: None,
                    message: e,
                });
                String::new()
            }
        };
        let public_files = match list_public(dir) {
            Ok(files) => files,
            Err(e) => {
                check.problems.push(Problem {
                    file: "public/".to_owned(),
                    field: String::new(),
                    line: None,
                    message: e,
                });
                Vec::new()
            }
        };
        let solution_path = dir.join("solution").join("README.md");
        let solution = if solution_path.exists() {
            match read_capped(&solution_path, README_MAX_BYTES) {
                Ok(text) => Some(text),
                Err(e) => {
                    check.problems.push(Problem {
                        file: "solution/README.md".to_owned(),
                        field: String::new(),
                        line: None,
                        message: e,
                    });
                    None
                }
            }
        } else {
            None
        };
        let spec = spec.map(|spec| ChallengeSpec { solution, ..spec });
        match spec {
            Some(spec) if check.problems.is_empty() => Ok(Bundle {
                dir: dir.to_owned(),
                spec,
                readme,
                public_files,
            }),
            _ => Err(BundleProblems(check.problems)),
        }
    }
}

/// The catalog fields: slug (matching the folder), title, kind, difficulty, tags,
/// summary and points. Returns the trimmed title and what parsed.
fn check_catalog(
    check: &mut Checker<'_>,
    raw: &RawSpec,
) -> (String, Option<ChallengeKind>, Option<Difficulty>) {
    if let Err(e) = ChallengeSlug::parse(&raw.slug) {
        check.problem("slug", e);
    }
    let folder = check.dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !folder.is_empty() && folder != raw.slug {
        check.problem(
            "slug",
            format!(
                "{:?} differs from the folder name {folder:?}: they must match",
                raw.slug
            ),
        );
    }
    let title = raw.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 120 {
        check.problem("title", "must be 1 to 120 characters");
    }
    let kind = ChallengeKind::parse(&raw.kind);
    if kind.is_none() {
        check.problem(
            "kind",
            format!(
                "unknown kind {:?}: expected evasion, extraction, membership, secret or poisoning",
                raw.kind
            ),
        );
    }
    let difficulty = Difficulty::parse(&raw.difficulty);
    if difficulty.is_none() {
        check.problem(
            "difficulty",
            format!(
                "unknown difficulty {:?}: expected easy, medium or hard",
                raw.difficulty
            ),
        );
    }
    if raw.tags.len() > 12 || raw.tags.iter().any(|t| t.trim().is_empty() || t.len() > 32) {
        check.problem("tags", "expected at most 12 tags of 1 to 32 characters");
    }
    if raw.summary.chars().count() > 300 {
        check.problem("summary", "must be at most 300 characters");
    }
    if !(0..=1_000_000).contains(&raw.order) {
        check.problem(
            "order",
            format!("{} is out of range: expected 0 to 1000000", raw.order),
        );
    }
    if raw.requires.len() > 10 {
        check.problem("requires", "expected at most 10 challenges");
    }
    for slug in &raw.requires {
        if let Err(e) = ChallengeSlug::parse(slug) {
            check.problem("requires", format!("{slug:?}: {e}"));
        } else if *slug == raw.slug {
            check.problem("requires", "a challenge cannot come after itself");
        }
    }
    if raw.points > 100_000 {
        check.problem(
            "points",
            format!("{} is out of range: expected 0 to 100000", raw.points),
        );
    }
    (title, kind, difficulty)
}

fn check_spec(check: &mut Checker<'_>, raw: RawSpec) -> Option<ChallengeSpec> {
    let (title, kind, difficulty) = check_catalog(check, &raw);
    let task = raw.task.and_then(|t| check_task(check, t));
    let threat = check_threat(check, raw.threat);

    let targets = check_targets(check, raw.targets);

    let eval = raw
        .eval
        .map(|e| check_eval(check, e, &threat, task.as_ref()));

    let attack = raw
        .tracks
        .attack
        .and_then(|t| check_attack_track(check, &t));
    let defense = raw.tracks.defense.and_then(|t| check_defense(check, t));
    let flag = raw.flag.and_then(|f| check_flag(check, f, raw.points));
    let query = raw
        .query
        .and_then(|q| check_query(check, q, &targets, task.is_some()));
    let membership = raw.membership.map(|m| membership::check_section(check, m));
    let poisoning = raw.poisoning.map(|p| poisoning::check_section(check, p));
    let hints = check_hints(check, raw.hints);
    let completion = raw
        .completion
        .and_then(|c| check_completion(check, c, task.as_ref()));
    check_query_output(check, query.as_ref(), completion.as_ref());

    if let Some(kind) = kind {
        let sections = crate::kinds::Sections {
            task: task.as_ref(),
            threat: &threat,
            targets: &targets,
            eval: eval.as_ref(),
            attack: attack.as_ref(),
            defense: defense.as_ref(),
            flag: flag.as_ref(),
            membership: membership.as_ref(),
            poisoning: poisoning.as_ref(),
            clean_so_far: check.problems.is_empty(),
        };
        for (field, message) in (kind.rules().check)(&sections) {
            check.problem(field, message);
        }
    }

    Some(ChallengeSpec {
        slug: raw.slug,
        title,
        kind: kind?,
        difficulty: difficulty?,
        tags: raw.tags,
        points: raw.points,
        summary: raw.summary.trim().to_owned(),
        order: raw.order,
        requires: raw.requires,
        task,
        threat,
        targets,
        eval,
        attack,
        defense,
        flag,
        query,
        membership,
        poisoning,
        hints,
        solution: None,
        completion,
    })
}

fn check_targets(check: &mut Checker<'_>, raw: Vec<RawTarget>) -> Vec<Target> {
    let mut targets = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let field = format!("targets[{i}]");
        if ChallengeSlug::parse(&t.name).is_err() {
            check.problem(
                &format!("{field}.name"),
                format!("{:?} must be 2-64 characters of a-z, 0-9 and '-'", t.name),
            );
        }
        if targets.iter().any(|o: &Target| o.name == t.name) {
            check.problem(
                &format!("{field}.name"),
                format!("{:?} is used twice", t.name),
            );
        }
        let model = check.bundle_file(&format!("{field}.model"), &t.model);
        targets.push(Target {
            name: t.name,
            model,
        });
    }
    targets
}

fn check_eval(
    check: &mut Checker<'_>,
    e: RawEval,
    threat: &ThreatModel,
    task: Option<&TaskSpec>,
) -> EvalSet {
    if !(0.0..=1.0).contains(&e.public_fraction) || e.public_fraction.is_nan() {
        check.problem(
            "eval.public_fraction",
            format!("{} is out of range: expected 0.0 to 1.0", e.public_fraction),
        );
    }
    let labels = check.bundle_file("eval.labels", &e.labels);
    let target_labels = check_target_labels(check, e.target_labels, threat.targeted, task, &labels);
    EvalSet {
        inputs: check.bundle_file("eval.inputs", &e.inputs),
        labels,
        public_fraction: e.public_fraction,
        split_seed: e.split_seed,
        target_labels,
    }
}

/// The attack track's window; gate and hidden-set fields belong to the defense.
fn check_attack_track(check: &mut Checker<'_>, t: &RawTrack) -> Option<Track> {
    for extra in [
        t.gate_clean_accuracy.is_some(),
        t.hidden_inputs.is_some(),
        t.hidden_labels.is_some(),
        t.reference_attacks.is_some(),
    ] {
        if extra {
            check.problem(
                "tracks.attack",
                "gate and hidden-set fields belong to tracks.defense",
            );
            break;
        }
    }
    check.window("tracks.attack", t)
}

/// A text model answers with completions, and only a text model does.
fn check_query_output(
    check: &mut Checker<'_>,
    query: Option<&QuerySpec>,
    completion: Option<&CompletionSpec>,
) {
    match (query, completion) {
    (Some(q), None) if q.output == OutputMode::Completion => check.problem(
        "query.output",
        "\"completion\" answers need a [completion] section (vocab, max_chars)",
    ),
    (Some(q), Some(_)) if q.output != OutputMode::Completion => check.problem(
        "query.output",
        "a text model with a [completion] section answers with output = \"completion\"",
    ),
    (None, Some(_)) => check.problem(
        "completion",
        "a [completion] model is reached through a [query] section with output = \"completion\"",
    ),
    _ => {}
}
}

/// `eval.target_labels`: required exactly when the threat is targeted, one class
/// in `0..classes` per eval label (counted from the labels file's `.npy` header).
fn check_target_labels(
    check: &mut Checker<'_>,
    raw: Option<Vec<i64>>,
    targeted: bool,
    task: Option<&TaskSpec>,
    labels: &Path,
) -> Option<Vec<usize>> {
    const FIELD: &str = "eval.target_labels";
    let raw = match (raw, targeted) {
        (None, false) => return None,
        (None, true) => {
            check.problem(
                FIELD,
                "is required when threat.targeted = true: one target class per eval input, in order",
            );
            return None;
        }
        (Some(_), false) => {
            check.problem(
                FIELD,
                "is given but threat.targeted is false: remove it or set targeted = true",
            );
            return None;
        }
        (Some(raw), true) => raw,
    };
    let classes = task.map_or(0, |t| t.classes);
    let mut out = Vec::with_capacity(raw.len());
    for (i, &label) in raw.iter().enumerate() {
        match usize::try_from(label) {
            Ok(l) if l < classes => out.push(l),
            _ => {
                check.problem(
                    FIELD,
                    format!(
                        "entry {i} is {label}: expected a class from 0 to {}",
                        classes.saturating_sub(1)
                    ),
                );
                return None;
            }
        }
    }
    match npy_rows(&check.dir.join(labels)) {
        Ok(rows) if rows == out.len() => Some(out),
        Ok(rows) => {
            check.problem(
                FIELD,
                format!(
                    "holds {} target labels: expected {rows}, one per eval label in {}",
                    out.len(),
                    labels.display()
                ),
            );
            None
        }
        Err(e) => {
            check.problem(
                FIELD,
                format!(
                    "cannot count the eval labels in {} to check it: {e}",
                    labels.display()
                ),
            );
            None
        }
    }
}

/// The first dimension of an `.npy` file, read from its header alone.
fn npy_rows(path: &Path) -> Result<usize, String> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(65_536 + 12).read_to_end(&mut head))
        .map_err(|e| e.to_string())?;
    if head.len() < 10 || &head[..6] != b"\x93NUMPY" {
        return Err("not an .npy file".to_owned());
    }
    let (len, start): (usize, usize) = match head[6] {
        1 => (usize::from(u16::from_le_bytes([head[8], head[9]])), 10),
        2 | 3 if head.len() >= 12 => (
            usize::try_from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]))
                .map_err(|e| e.to_string())?,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = head
        .get(start..start.saturating_add(len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("the .npy header is cut short or not text")?;
    let shape = header
        .split_once("'shape':")
        .and_then(|(_, rest)| rest.trim_start().strip_prefix('('))
        .ok_or("the .npy header has no shape")?;
    let first: String = shape.chars().take_while(char::is_ascii_digit).collect();
    first
        .parse()
        .map_err(|_| "the .npy shape has no first dimension".to_owned())
}

fn check_completion(
    check: &mut Checker<'_>,
    raw: RawCompletion,
    task: Option<&TaskSpec>,
) -> Option<CompletionSpec> {
    let chars: Vec<char> = raw.vocab.chars().collect();
    let mut ok = true;
    if chars.len() < 2 {
        check.problem(
            "completion.vocab",
            "expected the padding character then at least one more",
        );
        ok = false;
    }
    for (i, c) in chars.iter().enumerate() {
        if chars[..i].contains(c) {
            check.problem(
                "completion.vocab",
                format!("{c:?} appears twice: every character needs one id"),
            );
            ok = false;
            break;
        }
    }
    if !(1..=1024).contains(&raw.max_chars) {
        check.problem(
            "completion.max_chars",
            format!("{} is out of range: expected 1 to 1024", raw.max_chars),
        );
        ok = false;
    }
    match task {
        Some(task) => {
            if task.input_shape.len() != 1 {
                check.problem(
                    "task.input_shape",
                    "a completion model takes [context] character ids: one dimension",
                );
                ok = false;
            }
            if task.classes != chars.len() {
                check.problem(
                    "task.classes",
                    format!(
                        "{} classes, but the vocab has {} characters: the model scores each next character",
                        task.classes,
                        chars.len()
                    ),
                );
                ok = false;
            }
        }
        None => {
            check.problem("completion", "a completion model needs a [task] section");
            ok = false;
        }
    }
    ok.then(|| CompletionSpec {
        vocab: raw.vocab,
        max_chars: usize::try_from(raw.max_chars).unwrap_or(64),
    })
}

fn check_query(
    check: &mut Checker<'_>,
    raw: RawQuery,
    targets: &[Target],
    has_task: bool,
) -> Option<QuerySpec> {
    if !has_task {
        check.problem(
            "query",
            "a query API needs a [task] section (input shape and classes)",
        );
    }
    let names = raw
        .targets
        .unwrap_or_else(|| targets.iter().map(|t| t.name.clone()).collect());
    for name in &names {
        if !targets.iter().any(|t| &t.name == name) {
            check.problem(
                "query.targets",
                format!("{name:?} is not one of the [[targets]]"),
            );
        }
    }
    if names.is_empty() && !raw.defenses {
        check.problem(
            "query",
            "name at least one target, or allow querying defenses",
        );
    }
    let output = match raw.output.as_deref().unwrap_or("probabilities") {
        "label" => OutputMode::Label,
        "top1" => OutputMode::Top1,
        "probabilities" => OutputMode::Probabilities,
        "completion" => OutputMode::Completion,
        other => {
            check.problem(
                "query.output",
                format!(
                    "unknown output {other:?}: expected label, top1, probabilities or completion"
                ),
            );
            return None;
        }
    };
    let decimals = raw.decimals.unwrap_or(4);
    let max_batch = raw.max_batch.unwrap_or(100);
    let mut ok = true;
    for (field, value, lo, hi) in [
        ("query.decimals", decimals, 0, 8),
        ("query.budget", raw.budget, 1, 1_000_000_000),
        ("query.max_batch", max_batch, 1, 4096),
    ] {
        if !(lo..=hi).contains(&value) {
            check.problem(
                field,
                format!("{value} is out of range: expected {lo} to {hi}"),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(QuerySpec {
        targets: names,
        defenses: raw.defenses,
        output,
        decimals: u32::try_from(decimals).ok()?,
        budget: u64::try_from(raw.budget).ok()?,
        max_batch: usize::try_from(max_batch).ok()?,
    })
}

fn check_flag(check: &mut Checker<'_>, raw: RawFlag, points: u32) -> Option<FlagSpec> {
    let sha = raw.sha256.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        check.problem(
            "flag.sha256",
            "must be the 64 hex digits of sha256(flag), e.g. printf %s 'FLAG' | sha256sum",
        );
    }
    let initial = raw.initial.unwrap_or(i64::from(points));
    let minimum = raw.minimum.unwrap_or(initial);
    let decay = raw.decay.unwrap_or(1);
    let mut ok = true;
    for (field, value) in [
        ("flag.initial", initial),
        ("flag.minimum", minimum),
        ("flag.decay", decay),
    ] {
        if !(0..=1_000_000).contains(&value) {
            check.problem(
                field,
                format!("{value} is out of range: expected 0 to 1000000"),
            );
            ok = false;
        }
    }
    if minimum > initial {
        check.problem(
            "flag.minimum",
            format!("{minimum} is above flag.initial ({initial})"),
        );
        ok = false;
    }
    let function = match raw.function.as_deref().unwrap_or("logarithmic") {
        "logarithmic" => Decay::Logarithmic,
        "linear" => Decay::Linear,
        other => {
            check.problem(
                "flag.function",
                format!("unknown decay {other:?}: expected logarithmic or linear"),
            );
            return None;
        }
    };
    if !ok {
        return None;
    }
    Some(FlagSpec {
        sha256: sha,
        initial: u64::try_from(initial).ok()?,
        minimum: u64::try_from(minimum).ok()?,
        decay: u64::try_from(decay).ok()?,
        function,
    })
}

fn check_task(check: &mut Checker<'_>, raw: RawTask) -> Option<TaskSpec> {
    let mut ok = true;
    if raw.input_shape.is_empty() || raw.input_shape.len() > 4 {
        check.problem(
            "task.input_shape",
            "expected 1 to 4 dimensions (the batch dimension is implied)",
        );
        ok = false;
    }
    let mut shape = Vec::new();
    for &d in &raw.input_shape {
        match usize::try_from(d) {
            Ok(d) if (1..=65_536).contains(&d) => shape.push(d),
            _ => {
                check.problem(
                    "task.input_shape",
                    format!("dimension {d} is out of range: expected 1 to 65536"),
                );
                ok = false;
            }
        }
    }
    if shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .is_none_or(|n| n > 16 << 20)
    {
        check.problem(
            "task.input_shape",
            "one example may hold at most 16,777,216 values",
        );
        ok = false;
    }
    let dtype = match raw.dtype.as_str() {
        "float32" => Some(Dtype::Float32),
        "uint8" => Some(Dtype::Uint8),
        other => {
            check.problem(
                "task.dtype",
                format!("unknown dtype {other:?}: expected float32 or uint8"),
            );
            None
        }
    };
    let [lo, hi] = raw.value_range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        check.problem(
            "task.value_range",
            format!("[{lo}, {hi}] must be two finite numbers, low < high"),
        );
        ok = false;
    }
    if !(2..=100_000).contains(&raw.classes) {
        check.problem(
            "task.classes",
            format!("{} is out of range: expected 2 to 100000", raw.classes),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(TaskSpec {
        input_shape: shape,
        dtype: dtype?,
        value_range: (lo as f32, hi as f32),
        classes: usize::try_from(raw.classes).ok()?,
    })
}

fn check_threat(check: &mut Checker<'_>, raw: RawThreat) -> ThreatModel {
    let norm = raw.norm.as_deref().and_then(|n| match n {
        "l0" => Some(Norm::L0),
        "l1" => Some(Norm::L1),
        "l2" => Some(Norm::L2),
        "linf" => Some(Norm::Linf),
        other => {
            check.problem(
                "threat.norm",
                format!("unknown norm {other:?}: expected l0, l1, l2 or linf"),
            );
            None
        }
    });
    if let Some(eps) = raw.epsilon
        && !(eps.is_finite() && eps > 0.0)
    {
        check.problem(
            "threat.epsilon",
            format!("{eps} must be a positive finite number"),
        );
    }
    ThreatModel {
        norm,
        epsilon: raw.epsilon,
        targeted: raw.targeted,
    }
}

fn check_defense(check: &mut Checker<'_>, t: RawTrack) -> Option<DefenseTrack> {
    let window = check.window("tracks.defense", &t);
    let gate = match t.gate_clean_accuracy {
        Some(g) if (0.0..=1.0).contains(&g) => Some(g),
        Some(g) => {
            check.problem(
                "tracks.defense.gate_clean_accuracy",
                format!("{g} is out of range: expected 0.0 to 1.0"),
            );
            None
        }
        None => {
            check.problem(
                "tracks.defense.gate_clean_accuracy",
                "is required for a defense track",
            );
            None
        }
    };
    let hidden_inputs = match &t.hidden_inputs {
        Some(p) => Some(check.bundle_file("tracks.defense.hidden_inputs", p)),
        None => {
            check.problem(
                "tracks.defense.hidden_inputs",
                "is required for a defense track",
            );
            None
        }
    };
    let hidden_labels = match &t.hidden_labels {
        Some(p) => Some(check.bundle_file("tracks.defense.hidden_labels", p)),
        None => {
            check.problem(
                "tracks.defense.hidden_labels",
                "is required for a defense track",
            );
            None
        }
    };
    for (field, path) in [
        ("tracks.defense.hidden_inputs", &hidden_inputs),
        ("tracks.defense.hidden_labels", &hidden_labels),
    ] {
        if path.as_ref().is_some_and(|p| p.starts_with("public")) {
            check.problem(
                field,
                "the hidden set must live under private/, or anyone could download it",
            );
        }
    }
    let reference_attacks = t.reference_attacks.unwrap_or_default();
    for name in &reference_attacks {
        if !REFERENCE_ATTACKS.contains(&name.as_str()) {
            check.problem(
                "tracks.defense.reference_attacks",
                format!("unknown reference attack {name:?}: expected one of {REFERENCE_ATTACKS:?}"),
            );
        }
    }
    let rank_by = match t.rank_by.as_deref() {
        None => Some(RankBy::WorstCase),
        Some(raw) => {
            let rule = RankBy::parse(raw);
            if rule.is_none() {
                check.problem(
                    "tracks.defense.rank_by",
                    format!("{raw:?} is not a ranking rule: expected \"worst_case\" or \"sum\""),
                );
            }
            rule
        }
    };
    let battery_queries = t.battery_queries.unwrap_or(RankBy::DEFAULT_BATTERY_QUERIES);
    if battery_queries > MAX_BATTERY_QUERIES {
        check.problem(
            "tracks.defense.battery_queries",
            format!("{battery_queries} is too many: expected 0 (no battery) to {MAX_BATTERY_QUERIES} queries per example"),
        );
    }
    Some(DefenseTrack {
        window: window?,
        gate_clean_accuracy: gate?,
        hidden_inputs: hidden_inputs?,
        hidden_labels: hidden_labels?,
        reference_attacks,
        rank_by: rank_by?,
        battery_queries: battery_queries.min(MAX_BATTERY_QUERIES),
    })
}

fn read_capped(path: &Path, max: u64) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|_| "is missing".to_owned())?;
    if meta.len() > max {
        return Err(format!("is {} bytes: the limit is {max}", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "is not valid UTF-8".to_owned())
}

/// Every regular file under `public/`, sorted, with its size and sha256.
fn list_public(dir: &Path) -> Result<Vec<PublicFile>, String> {
    let root = dir.join("public");
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(folder) = stack.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| format!("cannot be listed: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot be listed: {e}"))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot be listed: {e}"))?;
            if kind.is_symlink() {
                return Err(format!(
                    "{} is a symbolic link: bundles may hold only regular files",
                    path.display()
                ));
            }
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .map_err(|_| "has a file outside itself".to_owned())?
                .to_str()
                .ok_or_else(|| format!("{} has a non-UTF-8 name", path.display()))?
                .replace('\\', "/");
            if !rel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
            {
                return Err(format!(
                    "{rel:?}: file names may use a-z, A-Z, 0-9, '.', '_', '-'"
                ));
            }
            let size = entry.metadata().map_err(|e| format!("{rel}: {e}"))?.len();
            if size > PUBLIC_FILE_MAX_BYTES {
                return Err(format!(
                    "{rel} is {size} bytes: the limit is {PUBLIC_FILE_MAX_BYTES}"
                ));
            }
            files.push(PublicFile {
                name: rel,
                size,
                sha256: sha256_file(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                path,
            });
            if files.len() > PUBLIC_MAX_FILES {
                return Err(format!("holds more than {PUBLIC_MAX_FILES} files"));
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Bundles found directly under `root` (folders holding a `challenge.toml`), sorted.
pub fn bundle_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.join("challenge.toml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
slug = "demo"
title = "Demo"
kind = "evasion"
difficulty = "easy"
tags = ["images"]

[task]
input_shape = [1, 4, 4]
dtype = "float32"
value_range = [0.0, 1.0]
classes = 3

[threat]
norm = "linf"
epsilon = 0.1

[[targets]]
name = "net"
model = "private/m.onnx"

[eval]
inputs = "public/x.npy"
labels = "public/y.npy"

[tracks.attack]
opens = 2026-01-01T00:00:00Z
closes = 2026-02-01T00:00:00Z

[tracks.defense]
opens = 2026-01-01T00:00:00Z
closes = 2026-02-01T00:00:00Z
gate_clean_accuracy = 0.9
hidden_inputs = "private/hx.npy"
hidden_labels = "private/hy.npy"
reference_attacks = ["square-linf"]
"#;

    fn bundle(toml: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("demo");
        for sub in ["public", "private"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for f in [
            "public/x.npy",
            "public/y.npy",
            "private/m.onnx",
            "private/hx.npy",
            "private/hy.npy",
        ] {
            std::fs::write(dir.join(f), f.as_bytes()).unwrap();
        }
        std::fs::write(dir.join("README.md"), "# Demo").unwrap();
        std::fs::write(dir.join("challenge.toml"), toml).unwrap();
        root
    }

    fn load(toml: &str) -> Bundle {
        let root = bundle(toml);
        Bundle::load(&root.path().join("demo")).unwrap()
    }

    fn problems(toml: &str) -> Vec<String> {
        let root = bundle(toml);
        match Bundle::load(&root.path().join("demo")) {
            Ok(_) => Vec::new(),
            Err(p) => p.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_good_bundle_loads_with_its_public_files_hashed() {
        let root = bundle(GOOD);
        let b = Bundle::load(&root.path().join("demo")).unwrap();
        assert_eq!(b.spec.slug, "demo");
        assert_eq!(b.spec.kind, ChallengeKind::Evasion);
        assert_eq!(b.spec.task.as_ref().unwrap().example_len(), 16);
        let attack = b.spec.attack.unwrap();
        assert_eq!(attack.opens, 1_767_225_600);
        assert_eq!(attack.submissions_per_day, 20);
        assert_eq!(attack.max_upload_bytes, 16 << 20);
        assert!(!b.spec.targets[0].is_white_box());
        let names: Vec<_> = b.public_files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["x.npy", "y.npy"]);
        // sha256("public/x.npy")
        assert_eq!(
            b.public_files[0].sha256,
            hex::encode(Sha256::digest(b"public/x.npy"))
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = GOOD
            .replace("epsilon = 0.1", "epsilon = 0.0")
            .replace("classes = 3", "classes = 1")
            .replace("private/hx.npy", "public/x.npy")
            .replace("[\"square-linf\"]", "[\"magic\"]");
        let found = problems(&bad);
        let joined = found.join("\n");
        for expected in [
            "challenge.toml: threat.epsilon: 0 must be a positive finite number",
            "challenge.toml: task.classes: 1 is out of range",
            "challenge.toml: tracks.defense.hidden_inputs: the hidden set must live under private/",
            "challenge.toml: tracks.defense.reference_attacks: unknown reference attack \"magic\"",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in\n{joined}"
            );
        }
    }

    #[test]
    fn the_ranking_rule_defaults_to_the_worst_case_for_bundles_and_the_sum_for_stored_specs() {
        let b = load(GOOD);
        let defense = b.spec.defense.as_ref().unwrap();
        assert_eq!(defense.rank_by, RankBy::WorstCase);
        assert_eq!(defense.battery_queries, RankBy::DEFAULT_BATTERY_QUERIES);
        let rule = |extra: &str| {
            GOOD.replace(
                "reference_attacks = [\"square-linf\"]",
                &format!("reference_attacks = [\"square-linf\"]\n{extra}"),
            )
        };
        let sum = load(&rule("rank_by = \"sum\"\nbattery_queries = 0"));
        let d = sum.spec.defense.as_ref().unwrap();
        assert_eq!((d.rank_by, d.battery_queries), (RankBy::Sum, 0));
        let joined = problems(&rule("rank_by = \"median\"\nbattery_queries = 99999")).join("\n");
        assert!(joined.contains("tracks.defense.rank_by: \"median\" is not a ranking rule: expected \"worst_case\" or \"sum\""), "{joined}");
        assert!(
            joined.contains("tracks.defense.battery_queries: 99999 is too many"),
            "{joined}"
        );
        // A spec stored before the rule existed (no fields) reads as the sum, no battery.
        let mut stored = serde_json::to_value(&b.spec).unwrap();
        let defense_json = stored["defense"].as_object_mut().unwrap();
        defense_json.remove("rank_by");
        defense_json.remove("battery_queries");
        let old: ChallengeSpec = serde_json::from_value(stored).unwrap();
        let d = old.defense.unwrap();
        assert_eq!((d.rank_by, d.battery_queries), (RankBy::Sum, 0));
    }

    #[test]
    fn syntax_errors_and_unknown_fields_carry_a_line() {
        let found = problems(&GOOD.replace(
            "tags = [\"images\"]",
            "tags = [\"images\"]\ncolour = \"red\"",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("challenge.toml:7: "), "{found:?}");
        assert!(found[0].contains("colour"), "{found:?}");
    }

    #[test]
    fn paths_may_not_escape_the_bundle() {
        for path in ["../x.npy", "/etc/passwd", "public/../../x", "build/x.npy"] {
            let found = problems(&GOOD.replace("public/y.npy", path));
            assert!(
                found.iter().any(|p| p.contains("eval.labels")
                    && p.contains("relative path under public/ or private/")),
                "{path}: {found:?}"
            );
        }
    }

    #[test]
    fn slug_must_match_the_folder_and_be_plain() {
        let found = problems(&GOOD.replace("slug = \"demo\"", "slug = \"Demo!\""));
        assert!(
            found.iter().any(|p| p.contains("not a valid slug")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("differs from the folder name")),
            "{found:?}"
        );
        assert!(ChallengeSlug::parse("mnist-evasion").is_ok());
        assert!(ChallengeSlug::parse("9lives").is_err());
        assert!(ChallengeSlug::parse("trailing-").is_err());
    }

    #[test]
    fn a_missing_readme_is_a_problem() {
        let root = bundle(GOOD);
        std::fs::remove_file(root.path().join("demo/README.md")).unwrap();
        let err = Bundle::load(&root.path().join("demo")).unwrap_err();
        assert_eq!(err.0[0].to_string(), "README.md: is missing");
    }

    #[test]
    fn flags_decay_like_ctfd() {
        let toml = r#"
slug = "demo"
title = "Demo"
kind = "secret"
difficulty = "easy"

[flag]
sha256 = "2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE"
initial = 500
minimum = 100
decay = 10
"#;
        let root = bundle(toml);
        let spec = Bundle::load(&root.path().join("demo")).unwrap().spec;
        let flag = spec.flag.unwrap();
        assert_eq!(
            flag.sha256,
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
        // ceil(((100 - 500) / 10^2) * s^2 + 500) with s = solves - 1
        assert_eq!(flag.value_after(0), 500);
        assert_eq!(flag.value_after(1), 500);
        assert_eq!(flag.value_after(2), 496); // -4 * 1
        assert_eq!(flag.value_after(3), 484); // -4 * 4
        assert_eq!(flag.value_after(6), 400); // -4 * 25
        assert_eq!(flag.value_after(11), 100); // -4 * 100
        assert_eq!(flag.value_after(50), 100); // floored
        let linear = FlagSpec {
            function: Decay::Linear,
            ..flag
        };
        assert_eq!(linear.value_after(3), 480); // 500 - 10 * 2
        let bad = problems(
            &toml
                .replace("minimum = 100", "minimum = 900")
                .replace("2C26", "ZZ26"),
        );
        assert!(
            bad.iter()
                .any(|p| p.contains("flag.minimum: 900 is above flag.initial (500)")),
            "{bad:?}"
        );
        assert!(
            bad.iter()
                .any(|p| p.contains("flag.sha256: must be the 64 hex digits")),
            "{bad:?}"
        );
    }

    #[test]
    fn track_windows_are_half_open() {
        let t = Track {
            opens: 10,
            closes: 20,
            submissions_per_day: 1,
            max_upload_bytes: 1,
        };
        assert!(!t.is_open_at(9));
        assert!(t.is_open_at(10));
        assert!(t.is_open_at(19));
        assert!(!t.is_open_at(20));
    }
    /// A version 1.0 `.npy` file of `n` little-endian i64 zeros.
    fn npy_i64(n: usize) -> Vec<u8> {
        let mut header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({n},), }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, n * 8));
        out
    }

    fn targeted_problems(toml: &str, labels: usize) -> (Vec<String>, Option<Vec<usize>>) {
        let root = bundle(toml);
        let dir = root.path().join("demo");
        std::fs::write(dir.join("public/y.npy"), npy_i64(labels)).unwrap();
        match Bundle::load(&dir) {
            Ok(b) => (Vec::new(), b.spec.eval.and_then(|e| e.target_labels)),
            Err(p) => (p.0.iter().map(ToString::to_string).collect(), None),
        }
    }

    #[test]
    fn targeted_challenges_need_one_target_label_in_range_per_eval_input() {
        let targeted = GOOD.replace("epsilon = 0.1", "epsilon = 0.1\ntargeted = true");
        let with = |labels: &str| {
            targeted.replace(
                "labels = \"public/y.npy\"",
                &format!("labels = \"public/y.npy\"\ntarget_labels = {labels}"),
            )
        };
        let (ok, found) = targeted_problems(&with("[1, 2, 0, 1]"), 4);
        assert!(ok.is_empty(), "{ok:?}");
        assert_eq!(found, Some(vec![1, 2, 0, 1]));

        let (missing, _) = targeted_problems(&targeted, 4);
        assert!(
            missing
                .iter()
                .any(|p| p.contains("eval.target_labels: is required when threat.targeted = true")),
            "{missing:?}"
        );
        let (count, _) = targeted_problems(&with("[1, 2, 0]"), 4);
        assert!(
            count
                .iter()
                .any(|p| p.contains("holds 3 target labels: expected 4")),
            "{count:?}"
        );
        let (range, _) = targeted_problems(&with("[1, 3, 0, -1]"), 4);
        assert!(
            range
                .iter()
                .any(|p| p.contains("entry 1 is 3: expected a class from 0 to 2")),
            "{range:?}"
        );
        let untargeted = GOOD.replace(
            "labels = \"public/y.npy\"",
            "labels = \"public/y.npy\"\ntarget_labels = [1, 2, 0, 1]",
        );
        let (stray, _) = targeted_problems(&untargeted, 4);
        assert!(
            stray
                .iter()
                .any(|p| p.contains("is given but threat.targeted is false")),
            "{stray:?}"
        );
    }

    #[test]
    fn only_what_scores_asks_for_a_rescore() {
        let root = bundle(GOOD);
        let old = Bundle::load(&root.path().join("demo")).unwrap().spec;
        let mut new = old.clone();
        new.title = "Renamed".into();
        new.points += 50;
        new.summary = "new words".into();
        new.tags.push("fresh".into());
        if let Some(attack) = new.attack.as_mut() {
            attack.closes += 86_400;
            attack.submissions_per_day += 1;
        }
        assert!(!old.scoring_differs(&new, false), "catalog and windows");
        assert!(
            old.scoring_differs(&new, true),
            "a file the scorer reads changed"
        );
        let mut eps = old.clone();
        eps.threat.epsilon = Some(0.2);
        assert!(old.scoring_differs(&eps, false));
        let mut target = old.clone();
        target.targets[0].model = "private/m2.onnx".into();
        assert!(old.scoring_differs(&target, false));
        let mut gate = old.clone();
        if let Some(d) = gate.defense.as_mut() {
            d.gate_clean_accuracy = 0.8;
        }
        assert!(old.scoring_differs(&gate, false));
    }

    #[test]
    fn the_learning_path_fields_are_checked() {
        let with = |extra: &str| {
            GOOD.replacen(
                "tags = [\"images\"]",
                &format!("tags = [\"images\"]\n{extra}"),
                1,
            )
        };
        let root = bundle(&with("order = 5\nrequires = [\"warm-up\"]"));
        let spec = Bundle::load(&root.path().join("demo")).unwrap().spec;
        assert_eq!(
            (spec.order, spec.requires.as_slice()),
            (5, ["warm-up".to_owned()].as_slice())
        );
        let root = bundle(GOOD);
        assert_eq!(
            Bundle::load(&root.path().join("demo")).unwrap().spec.order,
            default_order()
        );
        for (extra, field) in [
            ("requires = [\"demo\"]", "requires"),
            ("requires = [\"Not A Slug\"]", "requires"),
            ("order = -1", "order"),
        ] {
            let root = bundle(&with(extra));
            let problems = Bundle::load(&root.path().join("demo")).unwrap_err().0;
            assert!(
                problems.iter().any(|p| p.field == field),
                "{extra}: {problems:?}"
            );
        }
    }
}
