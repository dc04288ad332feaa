//! `mc_loglik`: multiple choice by log-likelihood (lm-eval `multiple_choice`): `acc` picks the
//! choice with the highest log-likelihood, `acc_norm` divides each by the choice's length in
//! characters (reported in the suite's `extra`).

use std::collections::BTreeMap;

use super::{logliks, rendered_choices, ItemScore, Request, RequestContext, Response, Scorer};
use crate::model::score::LogLik;
use crate::suite::item::Item;
use crate::suite::runner::ItemResult;
use crate::suite::spec::{ScorerKind, SuiteSpec};

pub struct McLoglik;

impl Scorer for McLoglik {
    fn kind(&self) -> ScorerKind {
        ScorerKind::McLoglik
    }
    fn metric(&self) -> &'static str {
        "acc"
    }
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        if cx.item.gold.is_none() {
            return Err(format!("item {} has no gold", cx.item.id));
        }
        Ok(Request::Continuations(rendered_choices(cx)?))
    }
    fn score(&self, _: &SuiteSpec, item: &Item, response: Response) -> Result<ItemScore, String> {
        let lls = logliks(&response)?;
        let Response::LogLiks { continuations, .. } = response else {
            unreachable!("checked by logliks")
        };
        let gold = item
            .gold
            .ok_or_else(|| format!("item {} has no gold", item.id))?;
        // acc_norm divides by the scored choice's length without the delimiter (lm-eval)
        let raw: Vec<String> = continuations
            .iter()
            .map(|c| c.strip_prefix(' ').unwrap_or(c).to_string())
            .collect();
        let s = score(lls, &raw, gold);
        Ok(ItemScore {
            score: s.acc,
            extracted: Some(s.pred.to_string()),
            logliks: lls.iter().map(|l| l.logprob).collect(),
            sums: vec![("acc_norm", s.acc_norm)],
            ..Default::default()
        })
    }
    fn aggregate(
        &self,
        items: &[ItemResult],
        sums: &BTreeMap<&'static str, f64>,
    ) -> BTreeMap<String, f64> {
        let n = items.len().max(1) as f64;
        BTreeMap::from([(
            "acc_norm".to_string(),
            sums.get("acc_norm").copied().unwrap_or(0.0) / n,
        )])
    }
}

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
}
