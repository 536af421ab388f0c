//! Scoring the query-based threat families: model extraction (fidelity of a
//! surrogate) and membership inference (TPR at a low FPR, MICO style).
//!
//! Both write ordinary matrix cells, so leaderboards, history and the
//! public/private split work as for evasion: an extraction cell counts the hidden
//! inputs (`total`) on which the surrogate agrees with the target (`fooled`); a
//! membership cell counts the split's members (`total`) and those caught at the
//! best threshold whose false-positive rate stays within the limit (`fooled`).

use std::collections::BTreeMap;

use riposte_core::scoring;
use riposte_core::store::{Evaluation, Party, Split};

use crate::score::Rejection;
use crate::tensor;

/// Named numbers per split, shown on the submission's page for the split it shows.
pub type SplitMetrics = BTreeMap<&'static str, BTreeMap<&'static str, f64>>;

fn split_of(public: bool) -> Split {
    if public {
        Split::Public
    } else {
        Split::Private
    }
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Public => "public",
        Split::Private => "private",
    }
}

fn share(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Fidelity cells of a surrogate: agreement with the target's predicted class,
/// per split; metrics add the surrogate's and the target's accuracy.
pub fn extraction_cells(
    attacker: &Party,
    target: &Party,
    surrogate: &[usize],
    victim: &[usize],
    labels: &[i64],
    public: &[bool],
) -> ([Evaluation; 2], SplitMetrics) {
    let mut cells = [Split::Public, Split::Private].map(|split| Evaluation {
        attacker: attacker.clone(),
        defender: target.clone(),
        split,
        total: 0,
        fooled: 0,
        created_at: 0,
        examples: None,
    });
    let mut right = [0usize; 2];
    let mut victim_right = [0usize; 2];
    for i in 0..surrogate.len().min(victim.len()).min(public.len()) {
        let k = usize::from(!public[i]);
        cells[k].total += 1;
        cells[k].fooled += i64::from(surrogate[i] == victim[i]);
        let label = labels.get(i).copied().unwrap_or(-1);
        right[k] += usize::from(i64::try_from(surrogate[i]).ok() == Some(label));
        victim_right[k] += usize::from(i64::try_from(victim[i]).ok() == Some(label));
    }
    let mut metrics = SplitMetrics::new();
    for (k, cell) in cells.iter().enumerate() {
        let total = usize::try_from(cell.total).unwrap_or(0);
        metrics.insert(
            split_name(cell.split),
            BTreeMap::from([
                (
                    "fidelity",
                    share(usize::try_from(cell.fooled).unwrap_or(0), total),
                ),
                ("accuracy", share(right[k], total)),
                ("target_accuracy", share(victim_right[k], total)),
                ("inputs", total as f64),
            ]),
        );
    }
    (cells, metrics)
}

/// Membership scores, one per candidate in candidate order: a `.npy` of N
/// numbers (shape `[N]` or `[N, 1]`), or a CSV with one score per line or
/// `index,score` rows (either with an optional header line).
pub fn read_scores(bytes: &[u8], filename: &str, n: usize) -> Result<Vec<f64>, Rejection> {
    let lower = filename.to_ascii_lowercase();
    let scores = if lower.ends_with(".csv") || lower.ends_with(".txt") {
        read_csv_scores(bytes, n)?
    } else {
        let t = tensor::read_tensor(bytes, Some(filename), &tensor::Limits::default())
            .map_err(|e| Rejection(e.to_string()))?;
        let column = t.shape.len() == 1 || (t.shape.len() == 2 && t.shape[1] == 1);
        if !column {
            return Err(Rejection(format!(
                "the scores have shape {:?}: expected [{n}] (one score per candidate)",
                t.shape
            )));
        }
        t.data.iter().map(|&v| f64::from(v)).collect()
    };
    if scores.len() != n {
        return Err(Rejection(format!(
            "{} scores: expected {n}, one per candidate in the order of the candidates file",
            scores.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Rejection(format!(
            "score {i} is NaN: every score must be a number (infinities are allowed)"
        )));
    }
    Ok(scores)
}

fn read_csv_scores(bytes: &[u8], n: usize) -> Result<Vec<f64>, Rejection> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Rejection("the CSV is not UTF-8 text".to_owned()))?;
    let rows: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let Some(&(_, first)) = rows.first() else {
        return Err(Rejection("the CSV has no rows".to_owned()));
    };
    let numeric = |s: &str| s.split(',').all(|f| f.trim().parse::<f64>().is_ok());
    let body = if numeric(first) {
        &rows[..]
    } else {
        &rows[1..]
    };
    let columns = body.first().map_or(1, |(_, l)| l.split(',').count());
    if columns > 2 {
        return Err(Rejection(format!(
            "the CSV has {columns} columns: expected one (score) or two (index,score)"
        )));
    }
    if body.len() > n {
        return Err(Rejection(format!(
            "the CSV has {} rows: expected {n}, one per candidate",
            body.len()
        )));
    }
    let mut scores = vec![f64::NAN; if columns == 2 { n } else { 0 }];
    let mut seen = vec![false; if columns == 2 { n } else { 0 }];
    for &(line, row) in body {
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        if fields.len() != columns {
            return Err(Rejection(format!(
                "line {line} has {} fields: expected {columns}",
                fields.len()
            )));
        }
        let score: f64 = fields[columns - 1].parse().map_err(|_| {
            Rejection(format!(
                "line {line}: {:?} is not a number",
                fields[columns - 1]
            ))
        })?;
        if columns == 1 {
            scores.push(score);
            continue;
        }
        let index: usize = fields[0].parse().ok().filter(|&i| i < n).ok_or_else(|| {
            Rejection(format!(
                "line {line}: index {:?} is not a candidate index 0 to {}",
                fields[0],
                n.saturating_sub(1)
            ))
        })?;
        if seen[index] {
            return Err(Rejection(format!(
                "line {line}: candidate {index} is scored twice"
            )));
        }
        seen[index] = true;
        scores[index] = score;
    }
    if columns == 2
        && let Some(missing) = seen.iter().position(|s| !s)
    {
        return Err(Rejection(format!(
            "candidate {missing} has no score: expected one row per candidate"
        )));
    }
    Ok(scores)
}

/// TPR at FPR <= `max_fpr` cells per split (members caught of members), and the
/// AUC of each split in the metrics.
pub fn membership_cells(
    attacker: &Party,
    target: &Party,
    scores: &[f64],
    is_member: &[bool],
    public: &[bool],
    max_fpr: f64,
) -> Result<([Evaluation; 2], SplitMetrics), scoring::ScoringError> {
    let mut cells = Vec::with_capacity(2);
    let mut metrics = SplitMetrics::new();
    for split_public in [true, false] {
        let (s, m): (Vec<f64>, Vec<bool>) = (0..scores.len())
            .filter(|&i| public.get(i) == Some(&split_public))
            .map(|i| (scores[i], is_member[i]))
            .unzip();
        let members = m.iter().filter(|&&x| x).count();
        let split = split_of(split_public);
        let (tpr, auc) = if s.is_empty() {
            (0.0, 0.5)
        } else {
            (
                scoring::tpr_at_fpr(&s, &m, max_fpr)?,
                scoring::roc_auc(&s, &m)?,
            )
        };
        // tpr = caught / members exactly, so this recovers the count
        let caught = (tpr * members as f64).round() as i64;
        cells.push(Evaluation {
            attacker: attacker.clone(),
            defender: target.clone(),
            split,
            total: members as i64,
            fooled: caught,
            created_at: 0,
            examples: None,
        });
        metrics.insert(
            split_name(split),
            BTreeMap::from([
                ("tpr_at_fpr", tpr),
                ("auc", auc),
                ("max_fpr", max_fpr),
                ("members", members as f64),
                ("non_members", (m.len() - members) as f64),
            ]),
        );
    }
    let [public_cell, private_cell]: [Evaluation; 2] = cells
        .try_into()
        .map_err(|_| scoring::ScoringError::Empty { what: "splits" })?;
    Ok(([public_cell, private_cell], metrics))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn org() -> Party {
        Party::Organizer("victim".into())
    }

    #[test]
    fn fidelity_counts_agreement_per_split() {
        let surrogate = [1, 2, 3, 4, 5, 6];
        let victim = [1, 2, 0, 4, 0, 0];
        let labels = [1, 0, 3, 4, 5, 6];
        let public = [true, true, true, false, false, false];
        let (cells, metrics) = extraction_cells(
            &Party::Submission(7),
            &org(),
            &surrogate,
            &victim,
            &labels,
            &public,
        );
        assert_eq!((cells[0].total, cells[0].fooled), (3, 2));
        assert_eq!((cells[1].total, cells[1].fooled), (3, 1));
        let public = &metrics["public"];
        assert!((public["fidelity"] - 2.0 / 3.0).abs() < 1e-12);
        // surrogate right on 0 and 2 of the public three; victim on 0 only
        assert!((public["accuracy"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((public["target_accuracy"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((metrics["private"]["accuracy"] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn membership_cells_hold_tpr_as_a_count() {
        // public: members score 0.9, 0.8, 0.2; non-members 0.7, 0.1, 0.05 ... (10)
        let scores = [
            0.9, 0.8, 0.2, 0.7, 0.1, 0.05, 0.04, 0.03, 0.02, 0.01, 0.6, 0.5,
        ];
        let is_member = [
            true, true, true, false, false, false, false, false, false, false, true, false,
        ];
        let public = [
            true, true, true, true, true, true, true, true, true, true, false, false,
        ];
        let (cells, metrics) = membership_cells(
            &Party::Submission(1),
            &org(),
            &scores,
            &is_member,
            &public,
            0.1,
        )
        .unwrap();
        // public: 3 members, 7 non-members. Threshold 0.8 -> TPR 2/3, FPR 0;
        // 0.7 -> FPR 1/7 > 0.1. So TPR = 2/3: 2 of 3 members.
        assert_eq!((cells[0].total, cells[0].fooled), (3, 2));
        // AUC: member 0.9 and 0.8 beat all 7; 0.2 beats 6 of 7 -> 20/21
        assert!((metrics["public"]["auc"] - 20.0 / 21.0).abs() < 1e-12);
        // private: one member above one non-member: TPR 1 at FPR 0
        assert_eq!((cells[1].total, cells[1].fooled), (1, 1));
        assert!((metrics["private"]["auc"] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn scores_read_from_npy_and_both_csv_forms() {
        let csv = "score\n0.5\n-1\n2e3\n";
        assert_eq!(
            read_scores(csv.as_bytes(), "s.csv", 3).unwrap(),
            [0.5, -1.0, 2000.0]
        );
        let indexed = "index,score\n2,0.3\n0,0.1\n1,0.2\n";
        assert_eq!(
            read_scores(indexed.as_bytes(), "s.csv", 3).unwrap(),
            [0.1, 0.2, 0.3]
        );
        let headerless = "1,0.2\n0,0.1\n";
        assert_eq!(
            read_scores(headerless.as_bytes(), "s.csv", 2).unwrap(),
            [0.1, 0.2]
        );
        for (bad, why) in [
            ("0.1\n0.2\n", "2 scores: expected 3"),
            ("0,0.1\n0,0.2\n1,0.3\n", "scored twice"),
            ("0,0.1\n1,0.2\n5,0.3\n", "not a candidate index"),
            ("0,0.1\n1,0.2\n", "candidate 2 has no score"),
            ("0.1\nabc\n0.3\n", "\"abc\" is not a number"),
            ("0.1\nnan\n0.3\n", "NaN"),
            ("1,2,3\n", "3 columns"),
        ] {
            let err = read_scores(bad.as_bytes(), "s.csv", 3).unwrap_err().0;
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let npy = tensor::Tensor::new(vec![3], vec![0.25, 0.5, 0.75])
            .unwrap()
            .to_npy();
        assert_eq!(
            read_scores(&npy, "scores.npy", 3).unwrap(),
            [0.25, 0.5, 0.75]
        );
        assert!(
            read_scores(&npy, "scores.npy", 4)
                .unwrap_err()
                .0
                .contains("expected 4")
        );
    }
}
