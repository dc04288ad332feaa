//! Scorers, one file each. A scorer turns a model's output for one item into an
//! [`ItemScore`]; an answer the extractor cannot parse is a *format failure*, counted apart
//! from a wrong answer.

pub mod extract;
pub mod mc_loglik;
pub mod pass_at_k;
pub mod refusal;
pub mod refusal_loglik;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemScore {
    /// the item's score in [0, 1] (or a continuous metric)
    pub score: f64,
    /// the answer pulled out of the output, if any
    pub extracted: Option<String>,
    /// the output could not be parsed into an answer at all
    pub format_failure: bool,
}
