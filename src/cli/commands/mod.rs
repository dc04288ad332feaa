//! One file per subcommand.
pub mod audit;
pub mod inspect;
pub mod train;
