//! Membership inference: one score per candidate, scored by the true-positive
//! rate at a false-positive limit.

use super::{CellWords, KindRules, SectionProblem, Sections, one_target_attack_only};

pub(super) const RULES: KindRules = KindRules {
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
