//! One file per subcommand.
pub mod audit;
pub mod compare;
pub mod demo;
pub mod eval;
pub mod gate;
pub mod inspect;
pub mod pretrain;
pub mod train;
