//! recmaml: recency-weighted first-order MAML over GRU4Rec, for next-item recommendation to
//! cold-start users. A CPU reference engine and a CUDA engine behind one [`backend::Backend`] trait.

pub mod backend;
pub mod cpu;
pub mod data;
pub mod error;
pub mod maml;
pub mod model;
pub mod rng;

pub use error::{Error, Result};
