//! Evasion: adversarial examples against models, all attacks against all defenses.

use super::{KindRules, MATRIX, SectionProblem, Sections};

pub(super) const RULES: KindRules = KindRules {
    check,
    states_goal: true,
    ..MATRIX
};

fn check(s: &Sections<'_>) -> Vec<SectionProblem> {
    let mut problems = Vec::new();
    if s.threat.targeted && s.eval.is_none() {
        problems.push((
            "eval.target_labels",
            "threat.targeted = true needs an [eval] section with target_labels".to_owned(),
        ));
    }
    if s.task.is_none() {
        problems.push((
            "task",
            "an evasion challenge needs a [task] section".to_owned(),
        ));
    }
    if s.threat.norm.is_none() || s.threat.epsilon.is_none() {
        problems.push((
            "threat",
            "an evasion challenge needs threat.norm and threat.epsilon".to_owned(),
        ));
    }
    if s.targets.is_empty() {
        problems.push((
            "targets",
            "an evasion challenge needs at least one [[targets]] model".to_owned(),
        ));
    }
    if s.eval.is_none() {
        problems.push((
            "eval",
            "an evasion challenge needs an [eval] section".to_owned(),
        ));
    }
    if s.attack.is_none() && s.defense.is_none() && s.clean_so_far && problems.is_empty() {
        problems.push((
            "tracks",
            "an evasion challenge needs tracks.attack or tracks.defense".to_owned(),
        ));
    }
    problems
}
