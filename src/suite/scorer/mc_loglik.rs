//! Multiple choice by log-likelihood (lm-eval `multiple_choice`): `acc` picks the choice with
//! the highest log-likelihood, `acc_norm` divides each by the choice's length in characters;
//! MC2 (TruthfulQA) is the normalised probability mass on the true choices.

use crate::model::score::LogLik;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct McScore {
    pub acc: f64,
    pub acc_norm: f64,
    pub pred: usize,
    pub pred_norm: usize,
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    // first maximum, as numpy's argmax
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Score one item from its choices' log-likelihoods (continuations as scored, e.g. `" Paris"`).
pub fn score(lls: &[LogLik], choices: &[String], gold: usize) -> McScore {
    let pred = argmax(lls.iter().map(|l| l.logprob));
    let pred_norm = argmax(
        lls.iter()
            .zip(choices)
            .map(|(l, c)| l.logprob / c.chars().count().max(1) as f64),
    );
    McScore {
        acc: (pred == gold) as u8 as f64,
        acc_norm: (pred_norm == gold) as u8 as f64,
        pred,
        pred_norm,
    }
}

/// TruthfulQA MC2: Σ p(true) / Σ p(all), with p = exp(loglikelihood).
pub fn mc2(lls: &[LogLik], golds: &[usize]) -> f64 {
    let max = lls
        .iter()
        .map(|l| l.logprob)
        .fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = lls.iter().map(|l| (l.logprob - max).exp()).collect();
    let t: f64 = golds.iter().filter_map(|&g| p.get(g)).sum();
    t / p.iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(x: f64) -> LogLik {
        LogLik {
            logprob: x,
            is_greedy: false,
            tokens: 1,
        }
    }

    #[test]
    fn acc_and_acc_norm_can_disagree() {
        let choices = vec![" a".to_string(), " a much longer answer".to_string()];
        let s = score(&[ll(-2.0), ll(-6.0)], &choices, 1);
        assert_eq!((s.pred, s.acc), (0, 0.0));
        assert_eq!((s.pred_norm, s.acc_norm), (1, 1.0));
    }

    #[test]
    fn mc2_is_true_mass() {
        let v = mc2(
            &[ll((0.5f64).ln()), ll((0.25f64).ln()), ll((0.25f64).ln())],
            &[0],
        );
        assert!((v - 0.5).abs() < 1e-12);
    }
}
