//! recmaml: recency-weighted first-order MAML over GRU4Rec, for next-item recommendation to
//! cold-start users. A CPU reference engine and a CUDA engine behind one [`backend::Backend`] trait.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod data;
pub mod error;
pub mod eval;
pub mod evaluate;
pub mod maml;
pub mod matrix;
pub mod model;
pub mod plot;
pub mod pretrain;
pub mod rng;
pub mod train;
pub mod util;
pub mod verify;

pub use error::{Error, Result};
