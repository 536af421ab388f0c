//! Everything the platform says and checks about one kind of challenge, one
//! module per kind: which bundle sections it needs ([`Sections`] in, problems
//! out), what an upload is called, the words its results, boards and matrix use,
//! and what its pages show.
//!
//! Each kind's module holds one [`KindRules`]; [`ChallengeKind::rules`] is the only
//! `match` on the kind here, so a new kind is a new module plus one arm (the
//! compiler names it). How a kind's uploads are scored lives beside this, in the
//! evaluator crate's `kinds/` (one module per scored kind there too).

mod evasion;
mod extraction;
pub(crate) mod membership;
pub(crate) mod poisoning;
mod secret;

use crate::challenge::{
    ChallengeKind, ChallengeSpec, DefenseTrack, EvalSet, FlagSpec, MembershipSpec, Target, Track,
};
use crate::store::Track as SubmissionTrack;
use crate::task::{TaskSpec, ThreatModel};

/// The sections of a bundle a kind's check looks at, after each was checked on its own.
pub struct Sections<'a> {
    pub task: Option<&'a TaskSpec>,
    pub threat: &'a ThreatModel,
    pub targets: &'a [Target],
    pub eval: Option<&'a EvalSet>,
    pub attack: Option<&'a Track>,
    pub defense: Option<&'a DefenseTrack>,
    pub flag: Option<&'a FlagSpec>,
    pub membership: Option<&'a MembershipSpec>,
    pub poisoning: Option<&'a crate::kinds::poisoning::PoisoningSpec>,
    /// No problem was found so far (some checks only make sense then).
    pub clean_so_far: bool,
}

/// A bundle problem a kind's check found: the field and what was wrong.
pub type SectionProblem = (&'static str, String);

/// What a matrix cell of the kind counts, in a chart's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellWords {
    /// The measure's name ("fooled", "agreement", "caught").
    pub name: &'static str,
    /// Hits, after a count ("fooled", "in agreement", "members caught").
    pub hits: &'static str,
    /// The caption under the matrix ("inputs fooled").
    pub caption: &'static str,
}

/// One kind's rules and words.
pub struct KindRules {
    /// The threat family's name on the learning path ("Evasion: adversarial examples").
    pub family: &'static str,
    /// What the family teaches, one or two sentences for the learning path.
    pub lesson: &'static str,
    /// The bundle sections the kind needs, and the ones it must not have.
    pub check: fn(&Sections<'_>) -> Vec<SectionProblem>,
    /// The file name an attack upload gets when it came without one.
    pub attack_file: &'static str,
    /// The submission page's column headings for an attack's results (count, rate).
    pub attack_columns: (&'static str, &'static str),
    /// The scoring rule stated above the challenge's leaderboard.
    pub board_rule: &'static str,
    /// What its matrix cells count.
    pub cells: CellWords,
    /// Queries spent break equal scores, so boards show them.
    pub shows_queries: bool,
    /// The challenge page states whether the attack is targeted.
    pub states_goal: bool,
    /// How one attack example counts, as an attack's submission page states it
    /// (`None`: the kind has no per-example rule to state).
    pub example_rule: fn(&ChallengeSpec) -> Option<String>,
}

/// The file name a defense upload gets when it came without one (every kind).
const DEFENSE_FILE: &str = "defense.onnx";

impl KindRules {
    /// The file name an upload on `track` gets when it came without one.
    pub fn default_file(&self, track: SubmissionTrack) -> &'static str {
        match track {
            SubmissionTrack::Attack => self.attack_file,
            SubmissionTrack::Defense => DEFENSE_FILE,
        }
    }

    /// Column headings (count, rate) of a submission's results on `track`.
    pub fn result_columns(&self, track: SubmissionTrack) -> (&'static str, &'static str) {
        match track {
            SubmissionTrack::Attack => self.attack_columns,
            SubmissionTrack::Defense => ("Correct", "Rate"),
        }
    }
}

impl ChallengeKind {
    /// This kind's rules and words.
    pub fn rules(self) -> &'static KindRules {
        match self {
            ChallengeKind::Evasion => &evasion::RULES,
            ChallengeKind::Extraction => &extraction::RULES,
            ChallengeKind::Membership => &membership::RULES,
            ChallengeKind::Secret => &secret::RULES,
            ChallengeKind::Poisoning => &poisoning::RULES,
        }
    }
}

/// The all-vs-all matrix's rules and words (evasion's), which a kind starts from
/// and overrides: `KindRules { check, ..MATRIX }`.
const MATRIX: KindRules = KindRules {
    family: "Evasion: adversarial examples",
    lesson: "Change an input by an amount nobody notices so a model misreads it, and defend models against it. Attacks are scored against every defense entered, defenses against every attack.",
    check: |_| vec![],
    attack_file: "attack.npy",
    attack_columns: ("Fooled", "Rate"),
    board_rule: "Attack score: sum over defenders of the share fooled. Defense score: sum over attacks of the accuracy kept. Ties go to the earlier submission.",
    cells: CellWords {
        name: "fooled",
        hits: "fooled",
        caption: "inputs fooled",
    },
    shows_queries: false,
    states_goal: false,
    example_rule: |_| None,
};

/// Problems for a kind whose uploads are scored against one organizer target
/// on the attack track (model extraction, membership inference).
fn one_target_attack_only(kind: &str, s: &Sections<'_>) -> Vec<SectionProblem> {
    let mut problems = Vec::new();
    if s.task.is_none() {
        problems.push(("task", format!("a {kind} challenge needs a [task] section")));
    }
    if s.targets.is_empty() {
        problems.push((
            "targets",
            format!("a {kind} challenge needs its target in [[targets]]"),
        ));
    }
    if s.attack.is_none() {
        problems.push((
            "tracks.attack",
            format!("a {kind} challenge takes its submissions on tracks.attack"),
        ));
    }
    if s.defense.is_some() {
        problems.push(no_defense(kind));
    }
    problems
}

fn no_defense(kind: &str) -> SectionProblem {
    (
        "tracks.defense",
        format!("a {kind} challenge has no defense track"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::ChallengeKind;

    fn threat(targeted: bool) -> ThreatModel {
        ThreatModel {
            norm: None,
            epsilon: None,
            targeted,
        }
    }

    fn empty(threat: &ThreatModel) -> Sections<'_> {
        Sections {
            task: None,
            threat,
            targets: &[],
            eval: None,
            attack: None,
            defense: None,
            flag: None,
            membership: None,
            poisoning: None,
            clean_so_far: true,
        }
    }

    fn fields(kind: ChallengeKind, sections: &Sections<'_>) -> Vec<&'static str> {
        (kind.rules().check)(sections)
            .into_iter()
            .map(|(field, _)| field)
            .collect()
    }

    #[test]
    fn each_kind_names_the_sections_it_needs() {
        let threat = threat(false);
        let s = empty(&threat);
        assert_eq!(
            fields(ChallengeKind::Evasion, &s),
            ["task", "threat", "targets", "eval"]
        );
        assert_eq!(
            fields(ChallengeKind::Extraction, &s),
            ["task", "targets", "tracks.attack", "eval"]
        );
        assert_eq!(
            fields(ChallengeKind::Membership, &s),
            ["task", "targets", "tracks.attack", "membership"]
        );
        assert_eq!(fields(ChallengeKind::Secret, &s), ["flag"]);
        assert_eq!(
            fields(ChallengeKind::Poisoning, &s),
            ["task", "eval", "tracks.attack", "poisoning"]
        );
        // A secret's missing flag is only reported when nothing else was wrong.
        let dirty = Sections {
            clean_so_far: false,
            ..empty(&threat)
        };
        assert!(fields(ChallengeKind::Secret, &dirty).is_empty());
    }

    #[test]
    fn a_targeted_evasion_needs_its_eval_set() {
        let threat = threat(true);
        assert_eq!(
            fields(ChallengeKind::Evasion, &empty(&threat))[0],
            "eval.target_labels"
        );
    }

    #[test]
    fn only_evasion_states_a_per_example_rule() {
        let mut spec = ChallengeSpec::bare("c", ChallengeKind::Evasion);
        let rule = |spec: &ChallengeSpec| (spec.kind.rules().example_rule)(spec);
        assert_eq!(rule(&spec), None, "no budget, no rule to state");
        spec.threat.norm = Some(crate::task::Norm::Linf);
        spec.threat.epsilon = Some(0.3);
        let untargeted = rule(&spec).unwrap();
        assert!(
            untargeted.contains("anything but the true label"),
            "{untargeted}"
        );
        assert!(untargeted.contains("farther than 0.3"), "{untargeted}");
        spec.threat.targeted = true;
        assert!(rule(&spec).unwrap().contains("target label"));
        for kind in [ChallengeKind::Extraction, ChallengeKind::Membership] {
            spec.kind = kind;
            assert_eq!(rule(&spec), None);
        }
    }

    #[test]
    fn uploads_get_their_kind_s_default_name_and_columns() {
        use SubmissionTrack::{Attack, Defense};
        let named = |k: ChallengeKind, t| k.rules().default_file(t);
        assert_eq!(named(ChallengeKind::Evasion, Attack), "attack.npy");
        assert_eq!(named(ChallengeKind::Extraction, Attack), "surrogate.onnx");
        assert_eq!(named(ChallengeKind::Membership, Attack), "scores.npy");
        assert_eq!(named(ChallengeKind::Poisoning, Attack), "poison.npz");
        for kind in ChallengeKind::ALL {
            assert_eq!(named(kind, Defense), "defense.onnx");
            assert_eq!(kind.rules().result_columns(Defense), ("Correct", "Rate"));
        }
        assert_eq!(
            ChallengeKind::Extraction.rules().result_columns(Attack),
            ("Agreed with the target", "Fidelity")
        );
        assert!(ChallengeKind::Extraction.rules().shows_queries);
        assert!(!ChallengeKind::Membership.rules().shows_queries);
        assert!(ChallengeKind::Evasion.rules().states_goal);
    }
}
