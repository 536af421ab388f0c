//! Model extraction: a surrogate model stolen through the query API, scored by
//! its agreement with the target on hidden inputs.

use super::{CellWords, KindRules, SectionProblem, Sections, one_target_attack_only};

pub(super) const RULES: KindRules = KindRules {
    family: "Model stealing",
    lesson: "Query a model you cannot see and train a copy that answers like it: the copy is the victim's intellectual property, and a white-box stand-in for further attacks.",
    check,
    attack_file: "surrogate.onnx",
    attack_columns: ("Agreed with the target", "Fidelity"),
    board_rule: "Score: fidelity, the share of hidden inputs on which your surrogate predicts what the target predicts. Equal scores go to the team that spent fewer queries, then to the earlier submission.",
    cells: CellWords {
        name: "agreement",
        hits: "in agreement",
        caption: "inputs on which the surrogate agrees with the target",
    },
    shows_queries: true,
    states_goal: false,
    example_rule: |_| None,
};

fn check(s: &Sections<'_>) -> Vec<SectionProblem> {
    let mut problems = one_target_attack_only("extraction", s);
    if s.eval.is_none() {
        problems.push((
            "eval",
            "an extraction challenge needs [eval]: the hidden inputs fidelity is measured on"
                .to_owned(),
        ));
    }
    problems
}
