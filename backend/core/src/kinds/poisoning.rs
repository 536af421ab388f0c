//! Poisoning and backdoors: solved with a flag for now; scored poisoned-data
//! uploads are the learning path's next step (issue 13).

use super::{KindRules, MATRIX, SectionProblem, Sections, no_defense};

/// Until it scores uploads, its board states the matrix rule (as before).
pub(super) const RULES: KindRules = KindRules { check, ..MATRIX };

fn check(s: &Sections<'_>) -> Vec<SectionProblem> {
    if s.defense.is_some() {
        return vec![no_defense("poisoning")];
    }
    vec![]
}
