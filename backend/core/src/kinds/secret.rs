//! Secrets (training-data extraction, prompt and data leaks): solved with a flag,
//! worth less as more teams solve it.

use super::{KindRules, MATRIX, SectionProblem, Sections, no_defense};

pub(super) const RULES: KindRules = KindRules {
    family: "Secret extraction",
    lesson: "Make a model give up what it should keep: memorized training data, a hidden prompt, a key. You prove it with the secret itself, a flag.",
    check,
    board_rule: "Every team that submits the flag holds the challenge's current value, which drops as more teams solve it; the first solver takes first blood.",
    ..MATRIX
};

fn check(s: &Sections<'_>) -> Vec<SectionProblem> {
    let mut problems = Vec::new();
    if s.flag.is_none() && s.clean_so_far {
        problems.push((
            "flag",
            "a secret challenge needs a [flag] section".to_owned(),
        ));
    }
    if s.defense.is_some() {
        problems.push(no_defense("secret"));
    }
    problems
}
