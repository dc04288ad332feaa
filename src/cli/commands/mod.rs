//! One file per subcommand.
pub mod audit;
pub mod eval;
pub mod inspect;
pub mod train;
