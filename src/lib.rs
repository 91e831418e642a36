//! recmaml: recency-weighted first-order MAML over GRU4Rec, for next-item recommendation to
//! cold-start users. A CPU reference engine and a CUDA engine behind one [`backend::Backend`] trait.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod matrix;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod pretrain;
pub mod recommend;
pub mod rng;
pub mod serve;
pub mod train;
pub mod util;
pub mod verify;

pub use error::{Error, Result};
