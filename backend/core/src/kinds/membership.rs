//! Membership inference: one score per candidate, scored by the true-positive
//! rate at a false-positive limit.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{CellWords, KindRules, SectionProblem, Sections, one_target_attack_only};
use crate::challenge::Checker;

pub(super) const RULES: KindRules = KindRules {
    family: "Membership inference",
    lesson: "Tell from a model's answers whether a record was in its training data: a privacy leak that differential privacy and regularization defend against.",
    check,
    attack_file: "scores.npy",
    attack_columns: ("Members caught", "TPR at the FPR limit"),
    board_rule: "Score: the true-positive rate at a false-positive rate of at most 10% (as in MICO) over this split's candidates. Ties go to the earlier submission.",
    cells: CellWords {
        name: "caught",
        hits: "members caught",
        caption: "members caught",
    },
    shows_queries: false,
    states_goal: false,
    example_rule: |_| None,
};

fn check(s: &Sections<'_>) -> Vec<SectionProblem> {
    let mut problems = one_target_attack_only("membership", s);
    if s.membership.is_none() {
        problems.push((
            "membership",
            "a membership challenge needs a [membership] section (candidates, members)".to_owned(),
        ));
    }
    problems
}

/// A membership-inference challenge: candidates, half of them the target's
/// training members; attackers score each candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipSpec {
    /// Candidate records (public), one example each.
    pub candidates: PathBuf,
    /// Their class labels (public), as loss-based attacks need them.
    pub candidate_labels: PathBuf,
    /// 1 for a training member, 0 otherwise (private).
    pub members: PathBuf,
    /// The score is the TPR at this false-positive rate at most (MICO: 0.1).
    pub max_fpr: f64,
    pub public_fraction: f64,
    pub split_seed: u64,
}

impl MembershipSpec {
    /// The section's bundle files, kept in the blob store.
    pub fn paths(&self) -> [&std::path::Path; 3] {
        [
            self.candidates.as_path(),
            self.candidate_labels.as_path(),
            self.members.as_path(),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMembership {
    candidates: String,
    candidate_labels: String,
    members: String,
    #[serde(default = "default_max_fpr")]
    max_fpr: f64,
    #[serde(default = "default_membership_public_fraction")]
    public_fraction: f64,
    #[serde(default)]
    split_seed: u64,
}

fn default_max_fpr() -> f64 {
    0.1
}

fn default_membership_public_fraction() -> f64 {
    0.5
}

/// The `[membership]` section on its own (the kind's check asks that it exists).
pub(crate) fn check_section(check: &mut Checker<'_>, raw: RawMembership) -> MembershipSpec {
    if !(0.0..=1.0).contains(&raw.public_fraction) || raw.public_fraction.is_nan() {
        check.problem(
            "membership.public_fraction",
            format!(
                "{} is out of range: expected 0.0 to 1.0",
                raw.public_fraction
            ),
        );
    }
    if !(raw.max_fpr > 0.0 && raw.max_fpr <= 1.0) {
        check.problem(
            "membership.max_fpr",
            format!(
                "{} is out of range: expected a rate above 0 and at most 1 (MICO uses 0.1)",
                raw.max_fpr
            ),
        );
    }
    MembershipSpec {
        candidates: check.bundle_file("membership.candidates", &raw.candidates),
        candidate_labels: check.bundle_file("membership.candidate_labels", &raw.candidate_labels),
        members: check.bundle_file("membership.members", &raw.members),
        max_fpr: raw.max_fpr,
        public_fraction: raw.public_fraction,
        split_seed: raw.split_seed,
    }
}
