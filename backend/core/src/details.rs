//! What a scorer records about one submission beside its matrix cells, for the
//! submission's page: a picture of what the model saw (evasion attacks) or the
//! named numbers behind the score (extraction, membership).
//!
//! The store keeps it as JSON in `submissions.details`; [`SubmissionDetails`] is
//! the only code that writes or reads that text, and reading never fails: text in
//! no known shape (a row from an older release, a hand edit) reads as
//! [`SubmissionDetails::None`], so a page shows less instead of erroring.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::Split;

/// What the model saw on one example: the label and confidence before and after.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreviewExample {
    pub index: usize,
    pub label: i64,
    pub clean_prediction: usize,
    pub clean_confidence: f32,
    pub adversarial_prediction: usize,
    pub adversarial_confidence: f32,
}

/// A few examples of an evasion attack run through one organizer target.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Preview {
    /// The organizer target the examples were run through.
    pub target: String,
    pub examples: Vec<PreviewExample>,
}

/// Named numbers per split: `"public" -> {"fidelity": 0.93, ...}`.
pub type SplitMetrics = BTreeMap<String, BTreeMap<String, f64>>;

/// The scorer's extras for one submission.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SubmissionDetails {
    /// Nothing beyond the cells (defenses, rejections, unscored submissions).
    #[default]
    None,
    /// An evasion attack: what an organizer target saw on a few examples.
    Preview(Preview),
    /// Extraction and membership: the metrics per split and the queries the team
    /// had spent when the upload was scored.
    Metrics {
        metrics: SplitMetrics,
        queries_used: i64,
    },
}

/// The stored shape of [`SubmissionDetails::Metrics`].
#[derive(Serialize, Deserialize)]
struct MetricsJson {
    metrics: SplitMetrics,
    queries_used: i64,
}

impl SubmissionDetails {
    /// The text stored in `submissions.details`.
    pub fn to_json(&self) -> String {
        let text = match self {
            SubmissionDetails::None => return "{}".to_owned(),
            SubmissionDetails::Preview(preview) => serde_json::to_string(preview),
            SubmissionDetails::Metrics {
                metrics,
                queries_used,
            } => serde_json::to_string(&MetricsJson {
                metrics: metrics.clone(),
                queries_used: *queries_used,
            }),
        };
        // Both shapes are plain maps of strings and numbers; serde_json cannot fail
        // on them except for non-finite floats, which it writes as null anyway.
        text.unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads stored text; anything in no known shape is [`SubmissionDetails::None`].
    pub fn from_json(text: &str) -> Self {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return SubmissionDetails::None;
        };
        if value.get("examples").is_some() {
            return serde_json::from_value(value)
                .map(SubmissionDetails::Preview)
                .unwrap_or_default();
        }
        if value.get("metrics").is_some() {
            return Self::metrics_from(&value);
        }
        SubmissionDetails::None
    }

    /// Lenient on values: a metric that is not a number is left out, a missing
    /// query count reads as 0.
    fn metrics_from(value: &serde_json::Value) -> Self {
        let metrics = value
            .get("metrics")
            .and_then(serde_json::Value::as_object)
            .map(|splits| {
                splits
                    .iter()
                    .filter_map(|(split, named)| {
                        let named = named.as_object()?;
                        let numbers = named
                            .iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                            .collect();
                        Some((split.clone(), numbers))
                    })
                    .collect()
            })
            .unwrap_or_default();
        SubmissionDetails::Metrics {
            metrics,
            queries_used: value
                .get("queries_used")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0),
        }
    }

    /// The picture of an evasion attack, if there is one.
    pub fn preview(&self) -> Option<&Preview> {
        match self {
            SubmissionDetails::Preview(preview) => Some(preview),
            _ => None,
        }
    }

    /// The named numbers of `split`, in name order (empty without metrics).
    pub fn split_metrics(&self, split: Split) -> Vec<(String, f64)> {
        match self {
            SubmissionDetails::Metrics { metrics, .. } => metrics
                .get(split.as_str())
                .map(|named| named.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default(),
            _ => vec![],
        }
    }

    /// The queries the team had spent when this was scored (metrics only).
    pub fn queries_used(&self) -> Option<i64> {
        match self {
            SubmissionDetails::Metrics { queries_used, .. } => Some(*queries_used),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> SubmissionDetails {
        let mut metrics = SplitMetrics::new();
        metrics.insert(
            "public".to_owned(),
            [("fidelity".to_owned(), 0.75), ("auc".to_owned(), 0.5)].into(),
        );
        metrics.insert("private".to_owned(), [("fidelity".to_owned(), 0.25)].into());
        SubmissionDetails::Metrics {
            metrics,
            queries_used: 120,
        }
    }

    #[test]
    fn every_shape_survives_the_round_trip() {
        let preview = SubmissionDetails::Preview(Preview {
            target: "baseline".to_owned(),
            examples: vec![PreviewExample {
                index: 3,
                label: 7,
                clean_prediction: 7,
                clean_confidence: 0.99,
                adversarial_prediction: 2,
                adversarial_confidence: 0.5,
            }],
        });
        for details in [SubmissionDetails::None, preview, metrics()] {
            assert_eq!(SubmissionDetails::from_json(&details.to_json()), details);
        }
    }

    #[test]
    fn the_stored_text_keeps_the_shapes_earlier_releases_wrote() {
        assert_eq!(SubmissionDetails::None.to_json(), "{}");
        assert_eq!(
            metrics().to_json(),
            r#"{"metrics":{"private":{"fidelity":0.25},"public":{"auc":0.5,"fidelity":0.75}},"queries_used":120}"#
        );
        let old = r#"{"target":"t","examples":[]}"#;
        assert_eq!(
            SubmissionDetails::from_json(old),
            SubmissionDetails::Preview(Preview {
                target: "t".to_owned(),
                examples: vec![]
            })
        );
    }

    #[test]
    fn unknown_or_broken_text_reads_as_nothing() {
        for text in ["", "{}", "null", "[1,2]", "{\"examples\": 3}", "not json"] {
            assert_eq!(
                SubmissionDetails::from_json(text),
                SubmissionDetails::None,
                "{text}"
            );
        }
    }

    #[test]
    fn metrics_read_by_split_in_name_order() {
        let details = metrics();
        assert_eq!(
            details.split_metrics(Split::Public),
            vec![("auc".to_owned(), 0.5), ("fidelity".to_owned(), 0.75)]
        );
        assert_eq!(
            details.split_metrics(Split::Private),
            vec![("fidelity".to_owned(), 0.25)]
        );
        assert_eq!(details.queries_used(), Some(120));
        assert_eq!(SubmissionDetails::None.split_metrics(Split::Public), vec![]);
        assert_eq!(SubmissionDetails::None.queries_used(), None);
    }

    #[test]
    fn a_non_number_metric_is_left_out() {
        let text = r#"{"metrics":{"public":{"a":1.5,"b":"x"}},"queries_used":"many"}"#;
        let details = SubmissionDetails::from_json(text);
        assert_eq!(
            details.split_metrics(Split::Public),
            vec![("a".to_owned(), 1.5)]
        );
        assert_eq!(details.queries_used(), Some(0));
    }
}
