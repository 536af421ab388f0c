//! Evasion: adversarial examples against models, all attacks against all defenses.

use super::{KindRules, MATRIX, SectionProblem, Sections};
use crate::challenge::ChallengeSpec;

pub(super) const RULES: KindRules = KindRules {
    check,
    states_goal: true,
    example_rule,
    ..MATRIX
};

/// When an adversarial example fools a model, and what an example over the
/// budget counts as.
fn example_rule(spec: &ChallengeSpec) -> Option<String> {
    let epsilon = spec.threat.epsilon?;
    let norm = spec.threat.norm?;
    let success = if spec.threat.targeted {
        "An example fools a model when the model predicts the example's target label."
    } else {
        "An example fools a model when the model predicts anything but the true label."
    };
    Some(format!(
        "{success} An example farther than {epsilon} ({norm}) from its original is over the budget and is scored as its clean original: it fools a model only where the model is wrong on the clean input too, so robust accuracy never exceeds clean accuracy."
    ))
}

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
