pub mod forward;
pub mod train_step;
