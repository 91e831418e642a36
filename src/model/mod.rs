//! The GRU4Rec model: its parameter layout (PyTorch names and shapes) and initialisation.

pub mod layout;

pub use layout::{ModelDims, ParamLayout, ParamTensor, PARAM_NAMES};
