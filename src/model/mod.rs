//! The GRU4Rec model: its parameter layout (PyTorch names and shapes) and initialisation.

pub mod init;
pub mod layout;

pub use init::init_params;
pub use layout::{ModelDims, ParamLayout, ParamTensor, PARAM_NAMES};
