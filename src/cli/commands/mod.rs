//! One file per subcommand.
pub mod audit;
pub mod compare;
pub mod eval;
pub mod inspect;
pub mod train;
