//! Regularizers that pull a fine-tune back toward its base, one per file. Each reports its
//! term under its own name in the step log and the run card.

mod kl;
mod l2sp;

pub use kl::KlToBase;
pub use l2sp::L2Sp;
