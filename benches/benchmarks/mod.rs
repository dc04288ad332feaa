pub mod decode;
pub mod forward;
pub mod scorers;
pub mod train_step;
